/* controller/report.h - the migration report (what weir does with each
 * annotation and setting of the Ingresses it would serve) and the table of
 * ingress-nginx annotation keys with weir's status. Both read weir's support
 * from the code that acts on the keys (annotations.c, compile.c), never
 * from a list of their own. Deterministic: the same snapshot gives the same
 * bytes. */
#ifndef WEIR_CONTROLLER_REPORT_H
#define WEIR_CONTROLLER_REPORT_H

#include <stdio.h>

#include "compile.h"
#include "store.h"

enum report_format { REPORT_MARKDOWN, REPORT_JSON };

/* "markdown" or "json" into *out. Returns 0 or WEIR_EINVAL. */
int report_format_parse(const char *s, enum report_format *out);

/* Compile snap (borrowed) with o and write the migration report to out.
 * source names where the objects came from (a directory, "Kubernetes API").
 * source_diags (borrowed, may be NULL) are problems found while reading the
 * objects; they are listed with the other diagnostics. Returns 0,
 * WEIR_ENOMEM, or WEIR_EIO when writing fails. */
int report_write(FILE *out, const struct snapshot *snap, const struct compile_options *o,
                 const struct diag_list *source_diags, const char *source,
                 enum report_format format);

/* Write the table of ingress-nginx's annotation keys with weir's status of
 * each, and the keys only weir reads. Returns 0, WEIR_ENOMEM, or WEIR_EIO. */
int report_list_annotations(FILE *out, enum report_format format);

#endif
