/* controller/manifests.h - a directory of YAML manifests as an object
 * source: every *.yaml / *.yml file (sorted by name), multi-document,
 * converted to json-c and fed to the store; followed with inotify. */
#ifndef WEIR_CONTROLLER_MANIFESTS_H
#define WEIR_CONTROLLER_MANIFESTS_H

#include <stddef.h>

#include <json-c/json.h>

#include "compile.h"
#include "store.h"

/* Convert YAML text (len bytes, one or more documents) to json-c objects.
 * Plain scalars follow the YAML core schema (null, bool, int, float);
 * quoted or !!str-tagged scalars stay strings. Each non-empty document is
 * passed to each(doc, line, arg) (doc: one reference, the callee takes it;
 * line: 1-based first line of the document). On a syntax error returns
 * WEIR_EPARSE and writes "line N: problem" into err; documents before the
 * error have been delivered. */
int manifests_yaml_to_json(const char *text, size_t len,
                           void (*each)(json_object *doc, unsigned line, void *arg), void *arg,
                           char *err, size_t errlen);

/* Read every manifest of dir into the store: one store_replace per kind,
 * so objects removed from the files disappear. Namespaced objects without
 * metadata.namespace get "default". Unknown kinds are skipped. Problems
 * (YAML errors, objects without kind or name) are appended to diags (caller
 * storage) with kind "File" and name "path:line"; they are never fatal.
 * Returns 0, or WEIR_EIO (store untouched) when dir cannot be read. */
int manifests_load(const char *dir, struct store *s, struct diag_list *diags);

struct manifests;

/* Follow dir with inotify in a thread: after a change (debounced ~50 ms)
 * the directory is re-read with manifests_load and its problems logged.
 * dir is copied; s is borrowed until manifests_stop. Returns 0 and *out, or
 * WEIR_EIO. */
int manifests_watch(const char *dir, struct store *s, struct manifests **out);

/* Stop the thread and free. NULL is fine. */
void manifests_stop(struct manifests *m);

#endif
