/* test_dna: carbon decay and mirroring (SPEC section 3), checked against hand-computed values. */
#include <cblas.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdint.h>
#include <string.h>

#include "dna.h"
#include "task.h"

#define US_PER_DAY INT64_C(86400000000)
/* 2023-11-14T22:13:20Z, an arbitrary clock. */
#define CLOCK_US INT64_C(1700000000000000)

/* 0.5^(10/h) for h = 30, 15, 60, 90. */
static const double keep_10_days[VEC_DOMAINS] = {
	0.7937005259840998, 0.6299605249474366, 0.8908987181403393, 0.9258747122872905,
};
/* 0.5^(100/h): cultural and behavioral fall below r = 0.1, the others do not. */
static const double keep_100_days[VEC_DOMAINS] = {
	0.1, 0.1, 0.3149802624737183, 0.4629373561436452,
};

/* appendix A, player.track_played. */
static const struct influence track_played = {{0.8, 0.6, 0.2, 0.3}, 0.5};
/* appendix A, any other type. */
static const struct influence unknown_type = {{0.5, 0.5, 0.5, 0.5}, 0.5};
/* appendix A, concierto.ticket_purchased: economic weight 1 and base 1. */
static const struct influence ticket_purchased = {{0.7, 0.6, 1.0, 0.9}, 1.0};

/* Tolerance for values that pass through pow(): a few float ulps around 1. */
#define FACTOR_TOL 1e-7
/* Tolerance for vector elements in [-2, 2] (saxpy may or may not fuse its multiply-add). */
#define ELEMENT_TOL 1e-6

static void fill_pattern(float *v, unsigned seed)
{
	for (size_t i = 0; i < VEC_DIM; i++)
		v[i] = (float)((int)((i * 37u + seed * 101u) % 200u) - 100) / 64.0f;
}

static void test_defaults(void)
{
	struct dna_preferences prefs;

	ASSERT_EQ_DBL(dna_half_life_days[0], 30.0, 0);
	ASSERT_EQ_DBL(dna_half_life_days[1], 15.0, 0);
	ASSERT_EQ_DBL(dna_half_life_days[2], 60.0, 0);
	ASSERT_EQ_DBL(dna_half_life_days[3], 90.0, 0);

	memset(&prefs, 0xab, sizeof(prefs));
	dna_preferences_default(&prefs);
	ASSERT_EQ_DBL(prefs.learning_rate, 0.1, 0);
	for (int d = 0; d < VEC_DOMAINS; d++)
		ASSERT_EQ_DBL(prefs.multiplier[d], 1.0, 0);
}

/* Decay only, 10 days after the clock, for each domain's half-life. */
static void test_decay_ten_days(void)
{
	struct dna_preferences prefs;
	struct dna_step step;
	float *v = vec_create(VEC_DIM);
	float *old = vec_create(VEC_DIM);
	double norms[VEC_DOMAINS];

	dna_preferences_default(&prefs);
	dna_compute_step(true, CLOCK_US, CLOCK_US + 10 * US_PER_DAY, &track_played, &prefs, &step);
	ASSERT_FALSE(step.late);
	ASSERT_TRUE(step.advances_clock);
	ASSERT_EQ_DBL(step.delta_days, 10.0, 0);
	ASSERT_EQ_DBL(step.base_alpha, 0.1 * 0.5, 1e-15);
	for (int d = 0; d < VEC_DOMAINS; d++) {
		ASSERT_EQ_DBL(step.keep[d], keep_10_days[d], FACTOR_TOL);
		ASSERT_EQ_DBL(step.late_factor[d], 1.0, 0);
	}
	/* a_d = 1 * 0.1 * 0.5 * w_d */
	ASSERT_EQ_DBL(step.alpha[0], 0.04f, 0);
	ASSERT_EQ_DBL(step.alpha[1], 0.03f, 0);
	ASSERT_EQ_DBL(step.alpha[2], 0.01f, 0);
	ASSERT_EQ_DBL(step.alpha[3], 0.015f, 0);

	fill_pattern(v, 1);
	memcpy(old, v, VEC_DIM * sizeof(float));
	dna_apply_step(v, NULL, &step, norms);
	for (int d = 0; d < VEC_DOMAINS; d++) {
		float keep = (float)keep_10_days[d];
		double sum = 0.0;

		for (size_t i = d * VEC_DOMAIN_DIM; i < (size_t)(d + 1) * VEC_DOMAIN_DIM; i++) {
			float expected = keep * old[i];
			double diff = (double)expected - (double)old[i];

			ASSERT_EQ_DBL(v[i], expected, ELEMENT_TOL);
			sum += diff * diff;
		}
		ASSERT_EQ_DBL(norms[d], sqrt(sum), 1e-5);
	}

	/* Scaling is a single rounding, so with the computed keep it is exact. */
	memcpy(v, old, VEC_DIM * sizeof(float));
	dna_apply_step(v, NULL, &step, NULL);
	for (size_t i = 0; i < VEC_DIM; i++)
		ASSERT_TRUE(v[i] == step.keep[i / VEC_DOMAIN_DIM] * old[i]);

	vec_free(v);
	vec_free(old);
}

/* 1000 days: every domain retains exactly r = 0.1; 100 days: only the fast ones do. */
static void test_min_retention(void)
{
	struct dna_step step;
	float *v = vec_create(VEC_DIM);

	dna_compute_step(true, CLOCK_US, CLOCK_US + 1000 * US_PER_DAY, &track_played, NULL, &step);
	ASSERT_EQ_DBL(step.delta_days, 1000.0, 0);
	for (int d = 0; d < VEC_DOMAINS; d++)
		ASSERT_EQ_DBL(step.keep[d], 0.1f, 0);

	for (size_t i = 0; i < VEC_DIM; i++)
		v[i] = 1.0f;
	dna_apply_step(v, NULL, &step, NULL);
	for (size_t i = 0; i < VEC_DIM; i++)
		ASSERT_EQ_DBL(v[i], 0.1f, 0);

	dna_compute_step(true, CLOCK_US, CLOCK_US + 100 * US_PER_DAY, &track_played, NULL, &step);
	for (int d = 0; d < VEC_DOMAINS; d++)
		ASSERT_EQ_DBL(step.keep[d], keep_100_days[d], FACTOR_TOL);
	ASSERT_EQ_DBL(step.keep[0], 0.1f, 0);
	ASSERT_EQ_DBL(step.keep[1], 0.1f, 0);

	vec_free(v);
}

/* An entry 10 days older than the clock: no decay, damped influence, clock stays. */
static void test_late_entry(void)
{
	struct dna_step step;
	float *v = vec_create(VEC_DIM);
	float *x = vec_create(VEC_DIM);
	float *old = vec_create(VEC_DIM);

	dna_compute_step(true, CLOCK_US, CLOCK_US - 10 * US_PER_DAY, &track_played, NULL, &step);
	ASSERT_TRUE(step.late);
	ASSERT_FALSE(step.advances_clock);
	ASSERT_EQ_DBL(step.delta_days, -10.0, 0);
	ASSERT_EQ_DBL(step.base_alpha, 0.05, 1e-15);
	for (int d = 0; d < VEC_DOMAINS; d++) {
		double expected_alpha = keep_10_days[d] * 0.1 * 0.5 * track_played.weight[d];

		ASSERT_EQ_DBL(step.keep[d], 1.0, 0);
		ASSERT_EQ_DBL(step.late_factor[d], keep_10_days[d], FACTOR_TOL);
		ASSERT_EQ_DBL(step.alpha[d], expected_alpha, FACTOR_TOL);
	}

	/* With a target: v <- (1 - a) * 1 * v + a * x. */
	fill_pattern(v, 2);
	fill_pattern(x, 3);
	memcpy(old, v, VEC_DIM * sizeof(float));
	dna_apply_step(v, x, &step, NULL);
	for (size_t i = 0; i < VEC_DIM; i++) {
		int d = (int)(i / VEC_DOMAIN_DIM);
		float alpha = (float)(keep_10_days[d] * 0.1 * 0.5 * track_played.weight[d]);
		float expected = (1.0f - alpha) * old[i] + alpha * x[i];

		ASSERT_EQ_DBL(v[i], expected, ELEMENT_TOL);
	}

	/* A very late entry is damped no further than r. */
	dna_compute_step(true, CLOCK_US, CLOCK_US - 1000 * US_PER_DAY, &track_played, NULL, &step);
	for (int d = 0; d < VEC_DOMAINS; d++) {
		ASSERT_EQ_DBL(step.late_factor[d], 0.1f, 0);
		ASSERT_EQ_DBL(step.alpha[d], 0.1 * 0.1 * 0.5 * track_played.weight[d], FACTOR_TOL);
	}

	/* One microsecond late is late. */
	dna_compute_step(true, CLOCK_US, CLOCK_US - 1, &track_played, NULL, &step);
	ASSERT_TRUE(step.late);
	ASSERT_FALSE(step.advances_clock);

	vec_free(v);
	vec_free(x);
	vec_free(old);
}

/* No clock (or no embedding): delta 0, no decay, the clock is set. */
static void test_null_clock(void)
{
	struct dna_step step;
	float *v = vec_create(VEC_DIM);
	float *x = vec_create(VEC_DIM);
	double norms[VEC_DOMAINS];

	/* The clock value is garbage when has_clock is false and must be ignored. */
	dna_compute_step(false, INT64_MIN, CLOCK_US, &unknown_type, NULL, &step);
	ASSERT_FALSE(step.late);
	ASSERT_TRUE(step.advances_clock);
	ASSERT_EQ_DBL(step.delta_days, 0.0, 0);
	for (int d = 0; d < VEC_DOMAINS; d++) {
		ASSERT_EQ_DBL(step.keep[d], 1.0, 0);
		ASSERT_EQ_DBL(step.late_factor[d], 1.0, 0);
		/* unknown type: 0.1 * 0.5 * 0.5 */
		ASSERT_EQ_DBL(step.alpha[d], 0.025f, 0);
	}

	/* A NULL embedding starts at zero, so the result is a * x exactly. */
	fill_pattern(x, 4);
	dna_apply_step(v, x, &step, norms);
	for (size_t i = 0; i < VEC_DIM; i++)
		ASSERT_TRUE(v[i] == 0.025f * x[i]);
	/*
	 * The recorded change norms are the same bits as each domain's squared changes summed in
	 * element order, in double (dna_evolution's rows must not depend on how the sums are run).
	 */
	for (int d = 0; d < VEC_DOMAINS; d++) {
		double sum = 0.0;

		for (size_t i = d * VEC_DOMAIN_DIM; i < (size_t)(d + 1) * VEC_DOMAIN_DIM; i++)
			sum += (double)(0.025f * x[i]) * (double)(0.025f * x[i]);
		ASSERT_EQ_DBL(norms[d], sqrt(sum), 0);
	}

	/* A clock equal to the entry time behaves the same. */
	dna_compute_step(true, CLOCK_US, CLOCK_US, &unknown_type, NULL, &step);
	ASSERT_FALSE(step.late);
	ASSERT_TRUE(step.advances_clock);
	for (int d = 0; d < VEC_DOMAINS; d++)
		ASSERT_EQ_DBL(step.keep[d], 1.0, 0);

	vec_free(v);
	vec_free(x);
}

/* PostgreSQL's infinite timestamps are INT64_MIN/MAX; the difference must not overflow. */
static void test_extreme_timestamps(void)
{
	struct dna_step step;

	dna_compute_step(true, INT64_MIN, INT64_MAX, &unknown_type, NULL, &step);
	ASSERT_FALSE(step.late);
	ASSERT_TRUE(step.delta_days > 1e8);
	for (int d = 0; d < VEC_DOMAINS; d++)
		ASSERT_EQ_DBL(step.keep[d], 0.1f, 0);

	dna_compute_step(true, INT64_MAX, INT64_MIN, &unknown_type, NULL, &step);
	ASSERT_TRUE(step.late);
	ASSERT_TRUE(step.delta_days < -1e8);
	for (int d = 0; d < VEC_DOMAINS; d++) {
		ASSERT_EQ_DBL(step.keep[d], 1.0, 0);
		ASSERT_EQ_DBL(step.late_factor[d], 0.1f, 0);
	}
}

static struct dna_preferences prefs_from_text(const char *json)
{
	struct dna_preferences prefs;
	cJSON *root = cJSON_Parse(json);

	ASSERT_TRUE(root != NULL);
	memset(&prefs, 0xab, sizeof(prefs));
	dna_preferences_from_json(root, &prefs);
	cJSON_Delete(root);
	return prefs;
}

static void assert_default_prefs(const struct dna_preferences *prefs)
{
	ASSERT_EQ_DBL(prefs->learning_rate, 0.1, 0);
	for (int d = 0; d < VEC_DOMAINS; d++)
		ASSERT_EQ_DBL(prefs->multiplier[d], 1.0, 0);
}

static void test_learning_rate(void)
{
	struct dna_preferences prefs;
	struct dna_step step;

	prefs = prefs_from_text("{\"learningRate\": 0.3}");
	ASSERT_EQ_DBL(prefs.learning_rate, 0.3, 0);
	dna_compute_step(true, CLOCK_US, CLOCK_US, &track_played, &prefs, &step);
	ASSERT_EQ_DBL(step.base_alpha, 0.3 * 0.5, 1e-15);
	ASSERT_EQ_DBL(step.alpha[0], (float)(0.3 * 0.5 * 0.8), 0);
	ASSERT_EQ_DBL(step.alpha[1], (float)(0.3 * 0.5 * 0.6), 0);
	ASSERT_EQ_DBL(step.alpha[2], (float)(0.3 * 0.5 * 0.2), 0);
	ASSERT_EQ_DBL(step.alpha[3], (float)(0.3 * 0.5 * 0.3), 0);

	/* The bounds themselves are allowed. */
	prefs = prefs_from_text("{\"learningRate\": 0.01}");
	ASSERT_EQ_DBL(prefs.learning_rate, 0.01, 0);
	prefs = prefs_from_text("{\"learningRate\": 0.5}");
	ASSERT_EQ_DBL(prefs.learning_rate, 0.5, 0);

	/* Out of range: ignored. */
	prefs = prefs_from_text("{\"learningRate\": 0.9}");
	assert_default_prefs(&prefs);
	prefs = prefs_from_text("{\"learningRate\": 0.009}");
	assert_default_prefs(&prefs);
	prefs = prefs_from_text("{\"learningRate\": -0.2}");
	assert_default_prefs(&prefs);
	prefs = prefs_from_text("{\"learningRate\": 0}");
	assert_default_prefs(&prefs);
	dna_compute_step(true, CLOCK_US, CLOCK_US, &track_played, &prefs, &step);
	ASSERT_EQ_DBL(step.alpha[0], 0.04f, 0);
}

static void test_multipliers(void)
{
	struct dna_preferences prefs;
	struct dna_step step;

	prefs = prefs_from_text("{\"culturalMultiplier\": 2, \"behavioralMultiplier\": 1.5,"
				" \"economicMultiplier\": 0, \"spatialMultiplier\": 3.5}");
	ASSERT_EQ_DBL(prefs.learning_rate, 0.1, 0);
	ASSERT_EQ_DBL(prefs.multiplier[0], 2.0, 0);
	ASSERT_EQ_DBL(prefs.multiplier[1], 1.5, 0);
	ASSERT_EQ_DBL(prefs.multiplier[2], 0.0, 0);
	ASSERT_EQ_DBL(prefs.multiplier[3], 1.0, 0); /* 3.5 > 3: ignored */

	dna_compute_step(true, CLOCK_US, CLOCK_US + 10 * US_PER_DAY, &track_played, &prefs, &step);
	/* cultural: 0.8 * 2 = 1.6 clamps to 1; behavioral 0.6 * 1.5 = 0.9; economic 0; spatial 0.3. */
	ASSERT_EQ_DBL(step.alpha[0], (float)(0.1 * 0.5 * 1.0), 0);
	ASSERT_EQ_DBL(step.alpha[1], (float)(0.1 * 0.5 * 0.9), FACTOR_TOL);
	ASSERT_EQ_DBL(step.alpha[2], 0.0, 0);
	ASSERT_EQ_DBL(step.alpha[3], (float)(0.1 * 0.5 * 0.3), FACTOR_TOL);
	/* Multipliers do not touch decay. */
	for (int d = 0; d < VEC_DOMAINS; d++)
		ASSERT_EQ_DBL(step.keep[d], keep_10_days[d], FACTOR_TOL);

	/* A weight of 1 with the maximum multiplier and rate: a = 0.5 * 1 * 1. */
	prefs = prefs_from_text("{\"learningRate\": 0.5, \"economicMultiplier\": 3}");
	dna_compute_step(true, CLOCK_US, CLOCK_US, &ticket_purchased, &prefs, &step);
	ASSERT_EQ_DBL(step.alpha[2], 0.5f, 0);
	ASSERT_EQ_DBL(step.base_alpha, 0.5, 0);

	/* Boundaries of [0, 3] are allowed. */
	prefs = prefs_from_text("{\"spatialMultiplier\": 3, \"culturalMultiplier\": 0.0}");
	ASSERT_EQ_DBL(prefs.multiplier[3], 3.0, 0);
	ASSERT_EQ_DBL(prefs.multiplier[0], 0.0, 0);
	prefs = prefs_from_text("{\"spatialMultiplier\": -0.5, \"culturalMultiplier\": 3.0001}");
	assert_default_prefs(&prefs);
}

/* Wrong JSON types, absurd numbers, non-objects: all ignored, never a crash. */
static void test_preferences_wrong_types(void)
{
	static const char *const ignored[] = {
		"{\"learningRate\": \"0.3\", \"culturalMultiplier\": \"2\"}",
		"{\"learningRate\": null, \"behavioralMultiplier\": null}",
		"{\"learningRate\": true, \"economicMultiplier\": false}",
		"{\"learningRate\": [0.3], \"spatialMultiplier\": {\"value\": 2}}",
		"{\"learningRate\": 1e308, \"culturalMultiplier\": -1e308}",
		"{\"learningRate\": 1e400, \"culturalMultiplier\": -1e400}",
		"{\"learningRate\": 1e-400}",
		"{\"learningrate\": 0.3, \"LearningRate\": 0.3, \"cultural_multiplier\": 2}",
		"{}",
		"[0.3, 2, 2, 2, 2]",
		"0.3",
		"\"learningRate\"",
		"null",
	};
	struct dna_preferences prefs;

	for (size_t i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++) {
		prefs = prefs_from_text(ignored[i]);
		assert_default_prefs(&prefs);
	}

	memset(&prefs, 0xab, sizeof(prefs));
	dna_preferences_from_json(NULL, &prefs);
	assert_default_prefs(&prefs);

	/* A good key survives its bad neighbours. */
	prefs = prefs_from_text("{\"learningRate\": \"x\", \"spatialMultiplier\": 2.5}");
	ASSERT_EQ_DBL(prefs.learning_rate, 0.1, 0);
	ASSERT_EQ_DBL(prefs.multiplier[3], 2.5, 0);
}

/*
 * One element of the rule in float32 steps, computed independently of dna.c: c * v and a * x each
 * rounded to float, then their sum rounded once. volatile keeps the compiler from fusing the
 * multiply and the add (FMA) or keeping more precision than a float.
 */
static float mirror_element(float c, float v, float a, float x)
{
	volatile float kept = c * v;
	volatile float pulled = a * x;
	volatile float sum = kept + pulled;

	return sum;
}

static float decay_element(float k, float v)
{
	volatile float kept = k * v;

	return kept;
}

/* Fail unless two floats are the same bits (the spec promises the same bits on every machine). */
#define ASSERT_SAME_FLOAT(got, expected)                                                           \
	do {                                                                                       \
		float got_ = (got), expected_ = (expected);                                        \
		if (memcmp(&got_, &expected_, sizeof(float)) != 0)                                 \
			FAIL("%s = %.9g is not bit-identical to %s = %.9g", #got, (double)got_, #expected, \
			     (double)expected_);                                                     \
	} while (0)

/* The full update with a target, checked element by element, bit for bit, with a scalar float loop. */
static void test_mirroring(void)
{
	struct dna_step step;
	float *v = vec_create(VEC_DIM);
	float *x = vec_create(VEC_DIM);
	float *old = vec_create(VEC_DIM);
	float *again = vec_create(VEC_DIM);
	double norms[VEC_DOMAINS];
	double norms_again[VEC_DOMAINS];

	dna_compute_step(true, CLOCK_US, CLOCK_US + 10 * US_PER_DAY, &track_played, NULL, &step);
	fill_pattern(v, 5);
	fill_pattern(x, 6);
	memcpy(old, v, VEC_DIM * sizeof(float));
	memcpy(again, v, VEC_DIM * sizeof(float));
	dna_apply_step(v, x, &step, norms);

	for (int d = 0; d < VEC_DOMAINS; d++) {
		float keep = (float)keep_10_days[d];
		float alpha = (float)(0.1 * 0.5 * track_played.weight[d]);
		float c = (float)((1.0 - (double)alpha) * (double)keep);
		double sum = 0.0;

		ASSERT_SAME_FLOAT(step.alpha[d], alpha);
		for (size_t i = d * VEC_DOMAIN_DIM; i < (size_t)(d + 1) * VEC_DOMAIN_DIM; i++) {
			float expected = mirror_element(c, old[i], alpha, x[i]);
			double diff = (double)expected - (double)old[i];

			ASSERT_SAME_FLOAT(v[i], expected);
			sum += diff * diff;
		}
		ASSERT_EQ_DBL(norms[d], sqrt(sum), 1e-5);
		ASSERT_TRUE(norms[d] > 0.0);
	}

	/* The same step on the same input is bit-identical, norms included. */
	dna_apply_step(again, x, &step, norms_again);
	ASSERT_TRUE(memcmp(v, again, VEC_DIM * sizeof(float)) == 0);
	ASSERT_TRUE(memcmp(norms, norms_again, sizeof(norms)) == 0);

	/* x == v and a == 0 with no decay leaves v alone: norms are 0. */
	dna_compute_step(false, 0, CLOCK_US, &(struct influence){{0, 0, 0, 0}, 0}, NULL, &step);
	memcpy(old, v, VEC_DIM * sizeof(float));
	dna_apply_step(v, v, &step, norms);
	ASSERT_TRUE(memcmp(v, old, VEC_DIM * sizeof(float)) == 0);
	for (int d = 0; d < VEC_DOMAINS; d++)
		ASSERT_EQ_DBL(norms[d], 0.0, 0);

	vec_free(v);
	vec_free(x);
	vec_free(old);
	vec_free(again);
}

/*
 * Two entries in sequence, 10 days apart, then a late one: the hand-run scalar loop tracks the
 * vector through all three.
 */
static void test_sequence(void)
{
	struct dna_step steps[3];
	float *v = vec_create(VEC_DIM);
	float *x = vec_create(VEC_DIM);
	float *expected = vec_create(VEC_DIM);
	int64_t clock = CLOCK_US;

	fill_pattern(x, 7);
	/* First entry on a NULL embedding and clock. */
	dna_compute_step(false, 0, clock, &unknown_type, NULL, &steps[0]);
	ASSERT_TRUE(steps[0].advances_clock);
	dna_apply_step(v, x, &steps[0], NULL);
	/* Second, 10 days later, with no target. */
	dna_compute_step(true, clock, clock + 10 * US_PER_DAY, &unknown_type, NULL, &steps[1]);
	ASSERT_TRUE(steps[1].advances_clock);
	clock += 10 * US_PER_DAY;
	dna_apply_step(v, NULL, &steps[1], NULL);
	/* Third, 10 days before the new clock, with a target. */
	dna_compute_step(true, clock, clock - 10 * US_PER_DAY, &unknown_type, NULL, &steps[2]);
	ASSERT_TRUE(steps[2].late);
	dna_apply_step(v, x, &steps[2], NULL);

	for (size_t i = 0; i < VEC_DIM; i++) {
		int d = (int)(i / VEC_DOMAIN_DIM);
		float keep = steps[1].keep[d];
		float late_alpha = steps[2].alpha[d];
		float late_c = (float)(1.0 - (double)late_alpha);
		float e = mirror_element((float)(1.0 - 0.025), 0.0f, 0.025f, x[i]);

		ASSERT_EQ_DBL(keep, keep_10_days[d], FACTOR_TOL);
		ASSERT_EQ_DBL(late_alpha, keep_10_days[d] * 0.1 * 0.5 * 0.5, FACTOR_TOL);
		e = decay_element(keep, e);
		e = mirror_element(late_c, e, late_alpha, x[i]);
		expected[i] = e;
	}
	for (size_t i = 0; i < VEC_DIM; i++)
		ASSERT_SAME_FLOAT(v[i], expected[i]);

	vec_free(v);
	vec_free(x);
	vec_free(expected);
}

/* SPEC 3 with an infinite carbon clock: +infinity makes every entry late, -infinity advances it. */
static void test_infinite_clocks(void)
{
	struct dna_step step;

	dna_compute_step(true, DNA_CLOCK_INFINITY, CLOCK_US, &track_played, NULL, &step);
	ASSERT_TRUE(step.late);
	ASSERT_FALSE(step.advances_clock);
	for (int d = 0; d < VEC_DOMAINS; d++) {
		ASSERT_EQ_DBL(step.keep[d], 1.0, 0);
		ASSERT_SAME_FLOAT(step.late_factor[d], (float)DNA_MIN_RETENTION);
	}
	dna_compute_step(true, DNA_CLOCK_MINUS_INFINITY, CLOCK_US, &track_played, NULL, &step);
	ASSERT_FALSE(step.late);
	ASSERT_TRUE(step.advances_clock);
	for (int d = 0; d < VEC_DOMAINS; d++) {
		ASSERT_SAME_FLOAT(step.keep[d], (float)DNA_MIN_RETENTION);
		ASSERT_EQ_DBL(step.late_factor[d], 1.0, 0);
	}
}

/* The daemon's reading of dna_preferences: the five number texts, the same bounds as the JSON. */
static void test_preferences_from_numbers(void)
{
	struct dna_preferences prefs;
	const char *valid[DNA_PREFERENCE_KEYS] = {"0.3", NULL, "2", "0", "3"};
	const char *invalid[DNA_PREFERENCE_KEYS] = {"0.0000000000000000000000000000000001", "3.0000001", "-1", "1e400",
						    "abc"};

	dna_preferences_from_numbers(valid, &prefs);
	ASSERT_EQ_DBL(prefs.learning_rate, 0.3, 0);
	ASSERT_EQ_DBL(prefs.multiplier[0], 1.0, 0);
	ASSERT_EQ_DBL(prefs.multiplier[1], 2.0, 0);
	ASSERT_EQ_DBL(prefs.multiplier[2], 0.0, 0);
	ASSERT_EQ_DBL(prefs.multiplier[3], 3.0, 0);
	dna_preferences_from_numbers(invalid, &prefs);
	ASSERT_EQ_DBL(prefs.learning_rate, DNA_DEFAULT_LEARNING_RATE, 0);
	for (int d = 0; d < VEC_DOMAINS; d++)
		ASSERT_EQ_DBL(prefs.multiplier[d], 1.0, 0);
	ASSERT_STR_EQ(dna_preference_keys[0], "learningRate");
	ASSERT_STR_EQ(dna_preference_keys[4], "spatialMultiplier");
}

/* The threads of this process (the entries of /proc/self/task). */
static int thread_count(void)
{
	DIR *dir = opendir("/proc/self/task");
	struct dirent *d;
	int n = 0;

	ASSERT_TRUE(dir != NULL);
	while ((d = readdir(dir)) != NULL)
		n += d->d_name[0] != '.';
	closedir(dir);
	return n;
}

/*
 * After dna_init_blas only this test's own thread is left: OpenBLAS's server threads (one per
 * further core in its pthread build, spinning for a while once loaded) are stopped, and BLAS
 * still computes in this thread.
 */
static void test_blas_threads_stopped(void)
{
	float v[4] = {1.0f, 2.0f, 3.0f, 4.0f};

	dna_init_blas();
	dna_init_blas(); /* a second call does nothing */
	ASSERT_EQ_INT(thread_count(), 1);
	cblas_sscal(4, 0.5f, v, 1);
	ASSERT_EQ_DBL(v[3], 2.0, 0);
	ASSERT_EQ_INT(thread_count(), 1);
}

int main(void)
{
	test_blas_threads_stopped();
	test_infinite_clocks();
	test_preferences_from_numbers();
	test_defaults();
	test_decay_ten_days();
	test_min_retention();
	test_late_entry();
	test_null_clock();
	test_extreme_timestamps();
	test_learning_rate();
	test_multipliers();
	test_preferences_wrong_types();
	test_mirroring();
	test_sequence();
	TEST_PASS();
}
