/*
 * test_version: the identity line `--version` prints and passportd logs at start names the
 * version, a git revision, the libpq loaded at run time, sd_notify support and the BLAS library;
 * and the built passportd prints that line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "build_config.h"
#include "task.h"
#include "version.h"

static void test_line(void)
{
	char line[512], expected[64];
	int libpq = PQlibVersion();

	version_line("passportd", line, sizeof(line));
	snprintf(expected, sizeof(expected), "passportd %s (git ", PASSPORT_VERSION);
	ASSERT_TRUE(strncmp(line, expected, strlen(expected)) == 0);
	ASSERT_TRUE(strcmp(version_revision(), "") != 0);
	ASSERT_STR_CONTAINS(line, version_revision());
	snprintf(expected, sizeof(expected), "; libpq %d.%d;", libpq / 10000, libpq % 10000);
	ASSERT_STR_CONTAINS(line, expected);
	ASSERT_STR_CONTAINS(line, HAVE_LIBSYSTEMD ? "; sd_notify yes;" : "; sd_notify no;");
	ASSERT_STR_CONTAINS(line, "; BLAS ");
	ASSERT_STR_CONTAINS(line, version_blas());
	ASSERT_TRUE(line[strlen(line) - 1] == ')');
	ASSERT_TRUE(strchr(line, '\n') == NULL);

	/* A short buffer truncates, never overflows. */
	version_line("passportd", line, 12);
	ASSERT_EQ_INT((int)strlen(line), 11);
}

/* The binary prints the same line (PASSPORTD is set by meson). */
static void test_binary(void)
{
	const char *passportd = getenv("PASSPORTD");
	char command[1024], printed[512] = "", line[512];
	FILE *pipe;

	ASSERT_NOT_NULL(passportd);
	snprintf(command, sizeof(command), "'%s' --version", passportd);
	pipe = popen(command, "r");
	ASSERT_NOT_NULL(pipe);
	ASSERT_NOT_NULL(fgets(printed, sizeof(printed), pipe));
	ASSERT_EQ_INT(pclose(pipe), 0);
	printed[strcspn(printed, "\n")] = '\0';
	version_line("passportd", line, sizeof(line));
	/*
	 * Equal up to the BLAS part: OpenBLAS names the CPU kernel it picked at run time, which
	 * differs under valgrind's CPU emulation.
	 */
	ASSERT_NOT_NULL(strstr(printed, "; BLAS "));
	*strstr(printed, "; BLAS ") = '\0';
	*strstr(line, "; BLAS ") = '\0';
	ASSERT_STR_EQ(printed, line);
}

int main(void)
{
	test_line();
	test_binary();
	TEST_PASS();
}
