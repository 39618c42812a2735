/* jobs/json_pos.h — where a field is in a JSON text, for error messages.
 *
 * jansson keeps no positions for values, so this is a small independent scanner over the
 * original text. Paths are dotted keys with [i] for array elements: "sampling.n",
 * "aggregate.k[2]", "" (the top-level value). Lines and columns are 1-based; columns count
 * UTF-8 characters (as jansson's error columns do).
 */
#ifndef THINKFAST_JSON_POS_H
#define THINKFAST_JSON_POS_H

#include <stddef.h>

/* Finds path in text[0..len). want_key: position of the member's key (for "unknown key"
 * errors) instead of its value. 0 found (*line, *col set), -1 not found or malformed JSON
 * (then *line = *col = 1). */
int json_pos_find(const char *text, size_t len, const char *path, int want_key, int *line,
                  int *col);

/* Line/column of byte offset off. */
void json_pos_linecol(const char *text, size_t len, size_t off, int *line, int *col);

#endif
