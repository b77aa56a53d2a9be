/* task: the tiny assert macros every unit test uses (in the spirit of libuv's test/task.h). */
#ifndef PASSPORT_TEST_TASK_H
#define PASSPORT_TEST_TASK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Each macro evaluates its arguments exactly once. On failure it prints the
 * expression, both values, the file and the line to stderr and exits 1, so a
 * test program is simply a main() full of assertions that ends in TEST_PASS().
 */

/* The number of assertions that passed so far, for the summary line. */
static inline unsigned long *task_passed_count(void)
{
	static unsigned long passed;
	return &passed;
}

#define TASK_FAIL_(...)                                                                \
	do {                                                                           \
		fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                   \
		fprintf(stderr, __VA_ARGS__);                                          \
		fputc('\n', stderr);                                                   \
		fflush(stderr);                                                        \
		exit(1);                                                               \
	} while (0)

#define TASK_PASS_() ((*task_passed_count())++)

/* Integer equality (any integer type; compared as long long). */
#define ASSERT_EQ_INT(a, b)                                                            \
	do {                                                                           \
		long long task_a_ = (long long)(a);                                    \
		long long task_b_ = (long long)(b);                                    \
		if (task_a_ != task_b_)                                                \
			TASK_FAIL_("ASSERT_EQ_INT(%s, %s): %lld != %lld", #a, #b,      \
				   task_a_, task_b_);                                  \
		TASK_PASS_();                                                          \
	} while (0)

/* |a - b| <= tol (compared as double; NaN never passes). Use tol 0 for exact equality. */
#define ASSERT_EQ_DBL(a, b, tol)                                                       \
	do {                                                                           \
		double task_a_ = (double)(a);                                          \
		double task_b_ = (double)(b);                                          \
		double task_tol_ = (double)(tol);                                      \
		if (!(fabs(task_a_ - task_b_) <= task_tol_) &&                         \
		    !(task_a_ == task_b_))                                             \
			TASK_FAIL_("ASSERT_EQ_DBL(%s, %s, %s): %.17g != %.17g "        \
				   "(diff %.3g, tol %.3g)",                            \
				   #a, #b, #tol, task_a_, task_b_,                     \
				   fabs(task_a_ - task_b_), task_tol_);                \
		TASK_PASS_();                                                          \
	} while (0)

#define ASSERT_TRUE(expr)                                                              \
	do {                                                                           \
		if (!(expr))                                                           \
			TASK_FAIL_("ASSERT_TRUE(%s): false", #expr);                   \
		TASK_PASS_();                                                          \
	} while (0)

#define ASSERT_FALSE(expr)                                                             \
	do {                                                                           \
		if (expr)                                                              \
			TASK_FAIL_("ASSERT_FALSE(%s): true", #expr);                   \
		TASK_PASS_();                                                          \
	} while (0)

/* String equality; a NULL on either side is printed as (null) and only equals NULL. */
#define ASSERT_STR_EQ(a, b)                                                            \
	do {                                                                           \
		const char *task_a_ = (a);                                             \
		const char *task_b_ = (b);                                             \
		if (!(task_a_ == task_b_ ||                                            \
		      (task_a_ != NULL && task_b_ != NULL &&                           \
		       strcmp(task_a_, task_b_) == 0)))                                \
			TASK_FAIL_("ASSERT_STR_EQ(%s, %s): \"%s\" != \"%s\"", #a, #b,  \
				   task_a_ ? task_a_ : "(null)",                       \
				   task_b_ ? task_b_ : "(null)");                      \
		TASK_PASS_();                                                          \
	} while (0)

/* Print the summary line and return 0 from main. */
#define TEST_PASS()                                                                    \
	do {                                                                           \
		printf("PASS %s: %lu assertions\n", __FILE__, *task_passed_count());   \
		return 0;                                                              \
	} while (0)

#endif
