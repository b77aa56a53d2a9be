/* migrations: load the numbered SQL files from the embedded table or from a directory (--sql-dir). */
#include "migrations.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Keep in step with MIGRATION_NAME in scripts/lib/embed_sql.py: ^[0-9]{3}_[A-Za-z0-9_.-]+\.sql$ */
bool migration_name_parse(const char *name, int *version)
{
	size_t len = strlen(name);

	if (len < 9) /* "NNN_" + at least one character + ".sql" */
		return false;
	for (int i = 0; i < 3; i++)
		if (name[i] < '0' || name[i] > '9')
			return false;
	if (name[3] != '_' || strcmp(name + len - 4, ".sql") != 0)
		return false;
	for (size_t i = 4; i < len - 4; i++) {
		char c = name[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			  c == '_' || c == '.' || c == '-';
		if (!ok)
			return false;
	}
	if (version)
		*version = (name[0] - '0') * 100 + (name[1] - '0') * 10 + (name[2] - '0');
	return true;
}

void migration_list_init_embedded(struct migration_list *list)
{
	list->items = (struct migration *)embedded_migrations;
	list->count = embedded_migration_count;
	list->owned = false;
}

static int compare_migrations(const void *a, const void *b)
{
	const struct migration *ma = a, *mb = b;
	return strcmp(ma->name, mb->name);
}

/* Read a whole file into a NUL-terminated heap buffer. */
static char *read_file(const char *path, size_t *length, char *err, size_t errlen)
{
	FILE *file = fopen(path, "rb");
	char *buffer = NULL;
	size_t size = 0, capacity = 0;

	if (!file) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	for (;;) {
		if (capacity - size < 4096) {
			size_t new_capacity = capacity ? capacity * 2 : 16384;
			char *grown = realloc(buffer, new_capacity);
			if (!grown) {
				snprintf(err, errlen, "out of memory reading %s", path);
				goto fail_buffer;
			}
			buffer = grown;
			capacity = new_capacity;
		}
		size_t got = fread(buffer + size, 1, capacity - size - 1, file);
		size += got;
		if (got == 0)
			break;
	}
	if (ferror(file)) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		goto fail_buffer;
	}
	fclose(file);
	buffer[size] = '\0';
	if (memchr(buffer, '\0', size)) {
		snprintf(err, errlen, "%s contains a NUL byte", path);
		free(buffer);
		return NULL;
	}
	*length = size;
	return buffer;

fail_buffer:
	free(buffer);
	fclose(file);
	return NULL;
}

int migration_list_init_dir(struct migration_list *list, const char *dir, char *err, size_t errlen)
{
	DIR *handle = opendir(dir);
	struct dirent *entry;
	size_t capacity = 0;

	memset(list, 0, sizeof *list);
	list->owned = true;
	if (!handle) {
		snprintf(err, errlen, "cannot open directory %s: %s", dir, strerror(errno));
		return -1;
	}
	while ((entry = readdir(handle)) != NULL) {
		int version;

		if (!migration_name_parse(entry->d_name, &version))
			continue;
		if (list->count == capacity) {
			size_t new_capacity = capacity ? capacity * 2 : 16;
			struct migration *grown = realloc(list->items, new_capacity * sizeof *grown);
			if (!grown) {
				snprintf(err, errlen, "out of memory");
				goto fail;
			}
			list->items = grown;
			capacity = new_capacity;
		}
		struct migration *m = &list->items[list->count];
		memset(m, 0, sizeof *m);
		m->version = version;
		m->name = strdup(entry->d_name);
		if (!m->name) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		list->count++;
	}
	closedir(handle);
	handle = NULL;

	if (list->count == 0) {
		snprintf(err, errlen, "no NNN_*.sql migrations in %s", dir);
		goto fail;
	}
	qsort(list->items, list->count, sizeof *list->items, compare_migrations);
	for (size_t i = 0; i < list->count; i++) {
		struct migration *m = &list->items[i];
		char path[4096];

		if (i > 0 && list->items[i - 1].version == m->version) {
			snprintf(err, errlen, "%s and %s share version %d", list->items[i - 1].name,
				 m->name, m->version);
			goto fail;
		}
		if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, m->name) >= sizeof path) {
			snprintf(err, errlen, "path too long: %s/%s", dir, m->name);
			goto fail;
		}
		m->text = read_file(path, &m->length, err, errlen);
		if (!m->text)
			goto fail;
	}
	return 0;

fail:
	if (handle)
		closedir(handle);
	migration_list_finish(list);
	return -1;
}

void migration_list_finish(struct migration_list *list)
{
	if (list->owned) {
		for (size_t i = 0; i < list->count; i++) {
			free((char *)list->items[i].name);
			free((char *)list->items[i].text);
		}
		free(list->items);
	}
	memset(list, 0, sizeof *list);
}
