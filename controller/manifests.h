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

/* What the files of a directory gave when last read (their objects, and
 * what identified each file's contents), so that reading the directory
 * again parses only the files that changed. */
struct manifests_cache;

struct manifests_cache *manifests_cache_new(void);    /* aborts on OOM */
void manifests_cache_free(struct manifests_cache *c); /* NULL is fine */

/* manifests_load, with cache (NULL: none, as manifests_load): a file whose
 * stat (through symbolic links) gives the same device, inode, size and
 * modification and change times as at its last reading through cache is
 * not read: the objects it gave then go to the store again, the very same
 * json-c objects, so the store and the compiler see them unchanged; its
 * problems were appended to diags then and are not appended again. A file
 * changed within 50 ms before a reading began (file times are coarse) or
 * dated later is read again at the next reading. In a
 * file read again, an object equal to the one at the same place in its
 * last reading is that one too. Files gone leave the cache. */
int manifests_load_cached(const char *dir, struct store *s, struct diag_list *diags,
                          struct manifests_cache *cache);

struct manifests;

/* Follow dir with inotify in a thread: after a change (debounced ~2 ms of
 * quiet) the directory is re-read with manifests_load_cached and the
 * problems of the files read again are logged. dir is copied; s is
 * borrowed until manifests_stop. cache (NULL: a new one) is the one the
 * first reading of dir used, taken over (freed also on failure). Returns 0
 * and *out, WEIR_ENOMEM or WEIR_EIO. */
int manifests_watch(const char *dir, struct store *s, struct manifests_cache *cache,
                    struct manifests **out);

/* Stop the thread and free. NULL is fine. */
void manifests_stop(struct manifests *m);

#endif
