/* strbuf: a growable string, PostgreSQL array literals and UTF-8-safe truncation. */
#include "strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void strbuf_add(struct strbuf *sb, const char *text, size_t n)
{
	if (sb->failed)
		return;
	if (sb->len + n + 1 > sb->cap) {
		size_t cap = sb->cap ? sb->cap * 2 : 256;
		char *data;
		while (cap < sb->len + n + 1)
			cap *= 2;
		data = realloc(sb->data, cap);
		if (!data) {
			sb->failed = true;
			return;
		}
		sb->data = data;
		sb->cap = cap;
	}
	memcpy(sb->data + sb->len, text, n);
	sb->len += n;
	sb->data[sb->len] = '\0';
}

void strbuf_add_str(struct strbuf *sb, const char *text)
{
	strbuf_add(sb, text, strlen(text));
}

void strbuf_printf(struct strbuf *sb, const char *fmt, ...)
{
	va_list ap;
	char *text = NULL;
	int n;

	if (sb->failed)
		return;
	va_start(ap, fmt);
	n = vasprintf(&text, fmt, ap);
	va_end(ap);
	if (n < 0) {
		sb->failed = true;
		return;
	}
	strbuf_add(sb, text, (size_t)n);
	free(text);
}

char *strbuf_take(struct strbuf *sb)
{
	char *data = sb->failed ? NULL : sb->data;

	if (sb->failed)
		free(sb->data);
	else if (!data)
		data = calloc(1, 1);
	memset(sb, 0, sizeof(*sb));
	return data;
}

void strbuf_free(struct strbuf *sb)
{
	free(sb->data);
	sb->data = NULL;
	sb->len = sb->cap = 0;
}

char *sql_printf(const char *fmt, ...)
{
	va_list ap;
	char *out = NULL;

	va_start(ap, fmt);
	if (vasprintf(&out, fmt, ap) < 0)
		out = NULL;
	va_end(ap);
	return out;
}

void utf8_truncate(char *s, size_t max)
{
	size_t n = strlen(s);

	if (n <= max)
		return;
	n = max;
	while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	s[n] = '\0';
}

static int compare_uuid_text(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

char *uuid_array_literal(const char **ids, int n)
{
	struct strbuf sb = {0};
	const char **sorted = malloc(sizeof(*sorted) * (size_t)(n > 0 ? n : 1));
	const char *last = NULL;
	bool first = true;

	if (!sorted)
		return NULL;
	if (n > 0)
		memcpy(sorted, ids, sizeof(*sorted) * (size_t)n);
	qsort(sorted, (size_t)n, sizeof(*sorted), compare_uuid_text);
	strbuf_add_str(&sb, "{");
	for (int i = 0; i < n; i++) {
		if (!sorted[i][0] || (last && strcmp(last, sorted[i]) == 0))
			continue;
		if (!first)
			strbuf_add_str(&sb, ",");
		strbuf_add_str(&sb, sorted[i]);
		first = false;
		last = sorted[i];
	}
	strbuf_add_str(&sb, "}");
	free(sorted);
	if (sb.failed) {
		strbuf_free(&sb);
		return NULL;
	}
	return sb.data;
}

void array_add(struct array_param *a, const char *value)
{
	strbuf_add_str(&a->text, a->n++ ? "," : "{");
	strbuf_add_str(&a->text, value ? value : "NULL");
}

void array_add_quoted(struct array_param *a, const char *value)
{
	if (!value) {
		array_add(a, NULL);
		return;
	}
	strbuf_add_str(&a->text, a->n++ ? ",\"" : "{\"");
	for (const char *c = value; *c; c++) {
		const char *run = c;
		while (*c && *c != '"' && *c != '\\')
			c++;
		strbuf_add(&a->text, run, (size_t)(c - run));
		if (!*c)
			break;
		strbuf_add(&a->text, "\\", 1);
		strbuf_add(&a->text, c, 1);
	}
	strbuf_add_str(&a->text, "\"");
}

void array_add_number(struct array_param *a, double value)
{
	char text[40];

	snprintf(text, sizeof(text), "%.17g", value);
	array_add(a, text);
}

void array_add_uuid(struct array_param *a, const char *id)
{
	array_add(a, id && id[0] ? id : NULL);
}

int array_finish(struct array_param *a)
{
	strbuf_add_str(&a->text, a->n ? "}" : "{}");
	return a->text.failed ? -1 : 0;
}
