/* task: the assertion vocabulary of every test program in tests/ (in the spirit of libuv's test/task.h). */
#ifndef PASSPORT_TEST_TASK_H
#define PASSPORT_TEST_TASK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * A test program, unit, integration or fault, is a main() full of assertions that ends in
 * TEST_PASS(). Each ASSERT_ macro evaluates its arguments exactly once. On failure it prints the
 * expression, the values, the file and the line to stderr and exits 1 (through task_fail); on
 * success it counts one assertion for the summary line.
 *
 * What a failing test must still do (kill its children, print the daemon and server logs, stop a
 * private server) belongs in an atexit() handler, as in tests/fault/fault.c and
 * tests/integration/test_service.c: exit() runs it on every way a test can end, a failed
 * assertion, FAIL(), or the SIGTERM with which meson stops a test that ran out of time.
 */

/* The assertions that passed so far in the whole program, for TEST_PASS()'s summary. */
extern unsigned long task_assertions_passed;

/*
 * Fail the test: flush stdout, print "FAIL file:line: " and the printf-style message to stderr,
 * and exit 1. FAIL(...) is the usual form; a helper that checks on behalf of its caller passes
 * the caller's file and line to task_fail itself.
 */
void task_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4), noreturn));
#define FAIL(...) task_fail(__FILE__, __LINE__, __VA_ARGS__)

#define TASK_PASS_() (task_assertions_passed++)

/* Integer equality (any integer type; compared as long long). */
#define ASSERT_EQ_INT(a, b)                                                                            \
	do {                                                                                           \
		long long task_a_ = (long long)(a);                                                    \
		long long task_b_ = (long long)(b);                                                    \
		if (task_a_ != task_b_)                                                                \
			FAIL("ASSERT_EQ_INT(%s, %s): %lld != %lld", #a, #b, task_a_, task_b_);         \
		TASK_PASS_();                                                                          \
	} while (0)

/* An integer comparison a op b (any integer types; compared as long long); op is ==, !=, <, ... */
#define TASK_CMP_INT_(name, a, op, b)                                                                  \
	do {                                                                                           \
		long long task_a_ = (long long)(a);                                                    \
		long long task_b_ = (long long)(b);                                                    \
		if (!(task_a_ op task_b_))                                                             \
			FAIL("%s(%s, %s): expected %lld %s %lld", name, #a, #b, task_a_, #op, task_b_); \
		TASK_PASS_();                                                                          \
	} while (0)
#define ASSERT_NE_INT(a, b) TASK_CMP_INT_("ASSERT_NE_INT", a, !=, b)
#define ASSERT_LT_INT(a, b) TASK_CMP_INT_("ASSERT_LT_INT", a, <, b)
#define ASSERT_LE_INT(a, b) TASK_CMP_INT_("ASSERT_LE_INT", a, <=, b)
#define ASSERT_GT_INT(a, b) TASK_CMP_INT_("ASSERT_GT_INT", a, >, b)
#define ASSERT_GE_INT(a, b) TASK_CMP_INT_("ASSERT_GE_INT", a, >=, b)

/* |a - b| <= tol (compared as double; NaN never passes). Use tol 0 for exact equality. */
#define ASSERT_EQ_DBL(a, b, tol)                                                                       \
	do {                                                                                           \
		double task_a_ = (double)(a);                                                          \
		double task_b_ = (double)(b);                                                          \
		double task_tol_ = (double)(tol);                                                      \
		if (!(fabs(task_a_ - task_b_) <= task_tol_) && !(task_a_ == task_b_))                 \
			FAIL("ASSERT_EQ_DBL(%s, %s, %s): %.17g != %.17g (diff %.3g, tol %.3g)", #a, #b, \
			     #tol, task_a_, task_b_, fabs(task_a_ - task_b_), task_tol_);              \
		TASK_PASS_();                                                                          \
	} while (0)

#define ASSERT_TRUE(expr)                                                                              \
	do {                                                                                           \
		if (!(expr))                                                                           \
			FAIL("ASSERT_TRUE(%s): false", #expr);                                         \
		TASK_PASS_();                                                                          \
	} while (0)

#define ASSERT_FALSE(expr)                                                                             \
	do {                                                                                           \
		if (expr)                                                                              \
			FAIL("ASSERT_FALSE(%s): true", #expr);                                         \
		TASK_PASS_();                                                                          \
	} while (0)

#define ASSERT_NULL(p)                                                                                 \
	do {                                                                                           \
		const void *task_p_ = (p);                                                             \
		if (task_p_ != NULL)                                                                   \
			FAIL("ASSERT_NULL(%s): %p", #p, task_p_);                                      \
		TASK_PASS_();                                                                          \
	} while (0)

#define ASSERT_NOT_NULL(p)                                                                             \
	do {                                                                                           \
		if ((p) == NULL)                                                                       \
			FAIL("ASSERT_NOT_NULL(%s): NULL", #p);                                         \
		TASK_PASS_();                                                                          \
	} while (0)

/* String equality; a NULL on either side is printed as (null) and only equals NULL. */
#define ASSERT_STR_EQ(a, b)                                                                            \
	do {                                                                                           \
		const char *task_a_ = (a);                                                             \
		const char *task_b_ = (b);                                                             \
		if (!(task_a_ == task_b_ ||                                                            \
		      (task_a_ != NULL && task_b_ != NULL && strcmp(task_a_, task_b_) == 0)))          \
			FAIL("ASSERT_STR_EQ(%s, %s): \"%s\" != \"%s\"", #a, #b,                        \
			     task_a_ ? task_a_ : "(null)", task_b_ ? task_b_ : "(null)");              \
		TASK_PASS_();                                                                          \
	} while (0)

/* needle occurs in haystack (a NULL haystack fails); the whole haystack is printed on failure. */
#define ASSERT_STR_CONTAINS(haystack, needle)                                                          \
	do {                                                                                           \
		const char *task_h_ = (haystack);                                                      \
		const char *task_n_ = (needle);                                                        \
		if (task_h_ == NULL || strstr(task_h_, task_n_) == NULL)                               \
			FAIL("ASSERT_STR_CONTAINS(%s, %s): \"%s\" not in:\n%s", #haystack, #needle,    \
			     task_n_, task_h_ ? task_h_ : "(null)");                                   \
		TASK_PASS_();                                                                          \
	} while (0)

/* needle does not occur in haystack (a NULL haystack fails); the haystack is printed on failure. */
#define ASSERT_STR_NOT_CONTAINS(haystack, needle)                                                      \
	do {                                                                                           \
		const char *task_h_ = (haystack);                                                      \
		const char *task_n_ = (needle);                                                        \
		if (task_h_ == NULL || strstr(task_h_, task_n_) != NULL)                               \
			FAIL("ASSERT_STR_NOT_CONTAINS(%s, %s): \"%s\" found in:\n%s", #haystack,       \
			     #needle, task_n_, task_h_ ? task_h_ : "(null)");                          \
		TASK_PASS_();                                                                          \
	} while (0)

/* Print the summary line and return 0 from main. */
#define TEST_PASS()                                                                                    \
	do {                                                                                           \
		printf("PASS %s: %lu assertions\n", __FILE__, task_assertions_passed);                \
		return 0;                                                                              \
	} while (0)

#endif
