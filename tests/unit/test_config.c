/* test_config: the option table, its parsing, and that systemd/passportd.conf lists every option with its default. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "tables.h"
#include "task.h"

static void test_defaults_and_set(void)
{
	struct config c;
	char err[256];

	config_init(&c);
	ASSERT_EQ_INT(c.batch_size, 500);
	ASSERT_EQ_DBL(c.poll_interval, 5.0, 0);
	ASSERT_TRUE(c.listen);
	ASSERT_EQ_INT(c.systems, SYSTEM_ALL);
	ASSERT_EQ_INT(c.max_attempts, 5);
	ASSERT_EQ_INT(c.log_level, LOG_LEVEL_INFO);

	ASSERT_EQ_INT(config_set(&c, "batch_size", "0", err, sizeof(err)), -1);
	ASSERT_EQ_INT(config_set(&c, "batch_size", "12x", err, sizeof(err)), -1);
	ASSERT_EQ_INT(c.batch_size, 500);
	ASSERT_EQ_INT(config_set(&c, "batch_size", "7", err, sizeof(err)), 0);
	ASSERT_EQ_INT(c.batch_size, 7);
	ASSERT_EQ_INT(config_set(&c, "poll_interval", "nan", err, sizeof(err)), -1);
	ASSERT_EQ_INT(config_set(&c, "systems", "mediaid,bogus", err, sizeof(err)), -1);
	ASSERT_TRUE(strstr(err, "bogus") != NULL);
	ASSERT_EQ_INT(config_set(&c, "systems", "coliseum", err, sizeof(err)), 0);
	ASSERT_EQ_INT(c.systems, SYSTEM_COLISEUM);
	ASSERT_EQ_INT(config_set(&c, "listen", "maybe", err, sizeof(err)), -1);
	ASSERT_EQ_INT(config_set(&c, "listen", "false", err, sizeof(err)), 0);
	ASSERT_TRUE(!c.listen);
	ASSERT_EQ_INT(config_set(&c, "no_such_option", "1", err, sizeof(err)), -1);
	config_finish(&c);
}

static void test_password_never_printed(void)
{
	struct config c;
	char err[256];
	char *text;

	config_init(&c);
	ASSERT_EQ_INT(config_set(&c, "dsn", "host=db user=passportd password=s3cret dbname=app", err, sizeof(err)), 0);
	text = config_value_text(&c, config_find("dsn"));
	ASSERT_TRUE(text != NULL);
	ASSERT_TRUE(strstr(text, "s3cret") == NULL);
	ASSERT_TRUE(strstr(text, "host='db'") != NULL);
	free(text);
	ASSERT_EQ_INT(config_set(&c, "dsn", "postgresql://passportd:hunter2@db:5432/app", err, sizeof(err)), 0);
	text = config_value_text(&c, config_find("dsn"));
	ASSERT_TRUE(strstr(text, "hunter2") == NULL);
	free(text);
	config_finish(&c);
}

/* The example file must name every option, with the default value, and nothing else. */
static void test_example_file_in_step(void)
{
	const char *root = getenv("PASSPORT_SOURCE_ROOT");
	char path[1024], line[1024];
	struct config from_file, defaults;
	char err[512];
	FILE *f;
	int seen[64] = {0};

	ASSERT_TRUE(root != NULL);
	snprintf(path, sizeof(path), "%s/systemd/passportd.conf", root);
	config_init(&from_file);
	config_init(&defaults);
	/* Reading fails on any unknown option. */
	ASSERT_EQ_INT(config_read_file(&from_file, path, true, err, sizeof(err)), 0);
	f = fopen(path, "r");
	ASSERT_TRUE(f != NULL);
	while (fgets(line, sizeof(line), f)) {
		int i = 0;
		for (const struct config_option *o = config_options; o->name; o++, i++) {
			size_t n = strlen(o->name);
			if (strncmp(line, o->name, n) == 0 && (line[n] == ' ' || line[n] == '='))
				seen[i]++;
		}
	}
	fclose(f);
	{
		int i = 0;
		for (const struct config_option *o = config_options; o->name; o++, i++) {
			char *a = config_value_text(&from_file, o), *b = config_value_text(&defaults, o);
			if (seen[i] != 1)
				fprintf(stderr, "option %s appears %d times in %s\n", o->name, seen[i], path);
			ASSERT_EQ_INT(seen[i], 1);
			ASSERT_STR_EQ(a, b);
			free(a);
			free(b);
		}
	}
	config_finish(&from_file);
	config_finish(&defaults);
}

int main(void)
{
	test_defaults_and_set();
	test_password_never_printed();
	test_example_file_in_step();
	TEST_PASS();
}
