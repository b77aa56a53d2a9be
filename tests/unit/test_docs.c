/*
 * test_docs: the man pages keep step with the code. Every option of the option table
 * (config_options[]) has its entry "*name* = _default_" in doc/passportd.conf.5.scd, and every
 * long option `passportd --help` lists appears as "*--name*" in doc/passportd.8.scd.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "task.h"

/* The whole file under the source root (PASSPORT_SOURCE_ROOT, set by meson); caller frees. */
static char *read_source_file(const char *relative)
{
	const char *root = getenv("PASSPORT_SOURCE_ROOT");
	char path[1024];
	char *text;
	long size;
	FILE *f;

	ASSERT_NOT_NULL(root);
	snprintf(path, sizeof(path), "%s/%s", root, relative);
	f = fopen(path, "rb");
	if (!f)
		FAIL("cannot open %s", path);
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	fseek(f, 0, SEEK_SET);
	text = malloc((size_t)size + 1);
	ASSERT_NOT_NULL(text);
	ASSERT_EQ_INT((long)fread(text, 1, (size_t)size, f), size);
	text[size] = '\0';
	fclose(f);
	return text;
}

/* Each option is defined once, at the start of a line, with the table's default. */
static void test_config_page_lists_every_option(void)
{
	char *page = read_source_file("doc/passportd.conf.5.scd");
	int options = 0;

	for (const struct config_option *o = config_options; o->name; o++, options++) {
		char entry[256], name_only[128];
		const char *first;

		snprintf(name_only, sizeof(name_only), "\n*%s* = ", o->name);
		snprintf(entry, sizeof(entry), "\n*%s* = _%s_\n", o->name,
			 o->default_value[0] ? o->default_value : "(empty)");
		first = strstr(page, name_only);
		if (!first)
			FAIL("passportd.conf(5) has no entry for the option %s (expected a line \"%s\")", o->name,
			     entry + 1);
		if (strstr(first + 1, name_only))
			FAIL("passportd.conf(5) defines the option %s twice", o->name);
		ASSERT_STR_CONTAINS(page, entry);
		if (o->reloadable) {
			/* The description, up to the next definition, says so. */
			const char *end = strstr(first + 1, "\n*");
			size_t length = end ? (size_t)(end - first) : strlen(first);
			char *description = strndup(first, length);
			if (!strstr(description, "_Reloadable._"))
				FAIL("passportd.conf(5): %s is reloadable but its entry does not say so", o->name);
			free(description);
		}
	}
	ASSERT_GT_INT(options, 10);
	free(page);
}

/* Every "--name" in `passportd --help` is documented in passportd(8). */
static void test_daemon_page_lists_every_option(void)
{
	const char *passportd = getenv("PASSPORTD");
	char *page = read_source_file("doc/passportd.8.scd");
	char command[1024], line[512];
	int found = 0;
	FILE *help;

	ASSERT_NOT_NULL(passportd);
	snprintf(command, sizeof(command), "'%s' --help", passportd);
	help = popen(command, "r");
	ASSERT_NOT_NULL(help);
	while (fgets(line, sizeof(line), help)) {
		for (char *p = strstr(line, "--"); p; p = strstr(p + 2, "--")) {
			char option[64], documented[80];
			size_t n = 0;

			while (n + 1 < sizeof(option) && (islower((unsigned char)p[2 + n]) || p[2 + n] == '-'))
				n++;
			if (n == 0)
				continue;
			memcpy(option, p + 2, n);
			option[n] = '\0';
			snprintf(documented, sizeof(documented), "*--%s*", option);
			if (!strstr(page, documented))
				FAIL("passportd(8) does not document --%s (expected \"%s\")", option, documented);
			found++;
		}
	}
	ASSERT_EQ_INT(pclose(help), 0);
	ASSERT_GT_INT(found, 20);
	free(page);
}

int main(void)
{
	test_config_page_lists_every_option();
	test_daemon_page_lists_every_option();
	TEST_PASS();
}
