/* task: the failure path and the assertion count behind tests/task.h. */
#include "task.h"

#include <stdarg.h>

unsigned long task_assertions_passed;

void task_fail(const char *file, int line, const char *fmt, ...)
{
	va_list args;

	/* What the test printed so far comes first, so the failure is the last thing in its log. */
	fflush(stdout);
	fprintf(stderr, "FAIL %s:%d: ", file, line);
	va_start(args, fmt);
	vfprintf(stderr, fmt, args);
	va_end(args);
	fputc('\n', stderr);
	fflush(stderr);
	exit(1);
}
