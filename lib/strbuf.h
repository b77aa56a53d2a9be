/*
 * strbuf: the string builders of the data path: a growable string, PostgreSQL array parameters
 * (literals "{a,b,c}", or binary uuid[], tid[] and timestamptz[]) for statement parameters, and
 * UTF-8-safe truncation.
 *
 * Ownership: a strbuf owns its data until strbuf_free (or until the caller takes sb.data and
 * frees it with free). A failed allocation sets sb.failed and makes every later add a no-op, so
 * a caller checks once, at the end.
 */
#ifndef PASSPORT_STRBUF_H
#define PASSPORT_STRBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
 * Copy the string src into dst of size bytes, cut to fit as snprintf's "%s" would, terminated
 * (size 0: nothing written); returns dst + the bytes copied (the terminator's place). For the hot paths
 * where snprintf's format parsing showed in profiles.
 */
char *text_copy(char *dst, size_t size, const char *src);

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
 * data (event types, timestamps) goes through array_add_quoted. array_finish closes the
 * literal; the text then belongs to a.text (strbuf_free).
 *
 * A column of uuids, ctids or timestamps can be sent in PostgreSQL's binary array format instead
 * (array_param_binary before the first value): the server then copies 16, 6 or 8 bytes per value
 * where it would parse text (array_in and uuid_in were ~8 % of a drain's backend time), and a
 * timestamp goes as its exact microseconds. Its bytes are in a.text too (not NUL-free: send them
 * with array_param_length and array_param_format).
 */
#define ARRAY_UUID_OID 2950
#define ARRAY_TID_OID 27
#define ARRAY_TIMESTAMPTZ_OID 1184
/* Microseconds from the Unix epoch to PostgreSQL's (2000-01-01 00:00:00 UTC): binary timestamps count from it. */
#define POSTGRES_EPOCH_US INT64_C(946684800000000)

struct array_param {
	struct strbuf text;
	int n;                /* values added */
	unsigned element_oid; /* 0: text; else the binary format, of this element type */
	bool invalid;         /* a value did not fit the column: not a uuid / ctid, or the wrong kind */
	bool has_null;        /* binary columns: a NULL was added (the header's flag) */
};

void array_add(struct array_param *a, const char *value); /* NULL adds SQL NULL */
void array_add_quoted(struct array_param *a, const char *value);
void array_add_number(struct array_param *a, double value);
void array_add_uuid(struct array_param *a, const char *id); /* NULL or "" adds SQL NULL */
/* A uuid's 16 bytes into a binary uuid[] column (a text column is left invalid). */
void array_add_uuid_bytes(struct array_param *a, const unsigned char bytes[16]);
/* A ctid as the server prints it, "(block,offset)". */
void array_add_tid(struct array_param *a, const char *ctid);
/* A ctid's 6 bytes as tidsend sends them into a binary tid[] column (a text column is left invalid). */
void array_add_tid_bytes(struct array_param *a, const unsigned char bytes[6]);
/* A timestamptz given as microseconds since the Unix epoch (binary timestamptz[] columns only). */
void array_add_timestamp(struct array_param *a, int64_t unix_us);
/* Make an empty column binary, of ARRAY_UUID_OID, ARRAY_TID_OID or ARRAY_TIMESTAMPTZ_OID. */
void array_param_binary(struct array_param *a, unsigned element_oid);
/*
 * Close the literal ("{}" when empty), or write the binary array's header. Returns 0, or -1 when
 * out of memory or a value was invalid (a.invalid).
 */
int array_finish(struct array_param *a);
/* After array_finish: the parameter's length in bytes and its format (0 text, 1 binary). */
int array_param_length(const struct array_param *a);
int array_param_format(const struct array_param *a);
/*
 * array_finish each of n columns and point values, lengths and formats at them: the parameters of
 * one statement. Returns 0; -1 when out of memory; -2 when a value did not fit its column.
 */
int array_params_finish(struct array_param *columns, int n, const char **values, int *lengths, int *formats);

#endif
