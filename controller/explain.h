/* controller/explain.h - the readable text of a compiled route table (the
 * controller's --explain output and the golden tests' expected text).
 * Deterministic: the same table and diagnostics give the same bytes. */
#ifndef WEIR_CONTROLLER_EXPLAIN_H
#define WEIR_CONTROLLER_EXPLAIN_H

#include <stdio.h>

#include "compile.h"
#include "route_table.h"

/* Write the readable text of a table and its diagnostics to out. t and
 * diags are borrowed (diags may be NULL: "diagnostics:" then says "none").
 * Returns 0, or WEIR_EIO when writing to out fails. */
int explain_write(FILE *out, const struct route_table *t, const struct diag_list *diags);

#endif
