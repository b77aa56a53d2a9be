/*
 * strbuf: the string builders of the data path: a growable string, PostgreSQL array literals
 * ("{a,b,c}") for statement parameters, and UTF-8-safe truncation.
 *
 * Ownership: a strbuf owns its data until strbuf_free (or until the caller takes sb.data and
 * frees it with free). A failed allocation sets sb.failed and makes every later add a no-op, so
 * a caller checks once, at the end.
 */
#ifndef PASSPORT_STRBUF_H
#define PASSPORT_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

struct strbuf {
	char *data; /* NUL-terminated; NULL until the first add */
	size_t len, cap;
	bool failed; /* an allocation failed: the contents are incomplete */
};

void strbuf_add(struct strbuf *sb, const char *text, size_t n);
void strbuf_add_str(struct strbuf *sb, const char *text);
void strbuf_printf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void strbuf_free(struct strbuf *sb);

/*
 * The assembled string, which the caller frees ("" when nothing was added), or NULL after an
 * allocation failure. Resets sb.
 */
char *strbuf_take(struct strbuf *sb);

/* printf into a new string (caller frees), NULL when out of memory. */
char *sql_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Cut s to at most max bytes without splitting a UTF-8 sequence. */
void utf8_truncate(char *s, size_t max);

/*
 * "{a,b,c}" of the distinct non-empty uuid texts among ids (already validated canonical), sorted.
 * Caller frees; NULL when out of memory.
 */
char *uuid_array_literal(const char **ids, int n);

/*
 * One column of a batch write, as the text of a PostgreSQL array, built value by value.
 * array_add takes UUIDs, numbers and fixed words of the project's own, which need no quoting;
 * data (event types, timestamps, ctids) goes through array_add_quoted. array_finish closes the
 * literal; the text then belongs to a.text (strbuf_free).
 */
struct array_param {
	struct strbuf text;
	int n; /* values added */
};

void array_add(struct array_param *a, const char *value); /* NULL adds SQL NULL */
void array_add_quoted(struct array_param *a, const char *value);
void array_add_number(struct array_param *a, double value);
void array_add_uuid(struct array_param *a, const char *id); /* NULL or "" adds SQL NULL */
/* Close the literal ("{}" when empty). Returns 0, or -1 when out of memory. */
int array_finish(struct array_param *a);

#endif
