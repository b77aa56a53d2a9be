/* dna: the carbon-decay and mirroring update of a 1536-float DNA (SPEC section 3). Pure, no I/O. */
#ifndef PASSPORT_DNA_H
#define PASSPORT_DNA_H

#include <stdbool.h>
#include <stdint.h>

#include "tables.h"
#include "vec.h"

struct cJSON;

/* Per-row tuning from media_ids.content_flags->'dna_preferences'. */
struct dna_preferences {
	double learning_rate;          /* L, 0.1 unless overridden within [0.01, 0.5] */
	double multiplier[VEC_DOMAINS]; /* m_d, 1 unless overridden within [0, 3] */
};

/* Half-lives in days of the four domains, and the minimum retention r. */
extern const double dna_half_life_days[VEC_DOMAINS];
#define DNA_MIN_RETENTION 0.1
#define DNA_DEFAULT_LEARNING_RATE 0.1

/*
 * Make BLAS single-threaded and stop OpenBLAS's own idle threads (OpenBLAS only; a no-op with
 * other cblas libraries). Only the first call does anything; call it at start-up, before BLAS is
 * used. The vector sizes here are far too small for threads to help, and a fixed configuration
 * keeps the results reproducible.
 */
void dna_init_blas(void);

void dna_preferences_default(struct dna_preferences *prefs);

/*
 * Read overrides from a dna_preferences JSON object (may be NULL or any JSON
 * value). Keys that are absent, not numbers, not finite or out of range keep
 * their default. Never fails.
 */
void dna_preferences_from_json(const struct cJSON *dna_preferences, struct dna_preferences *prefs);

/* The dna_preferences keys, in the order dna_preferences_from_numbers takes their values. */
#define DNA_PREFERENCE_KEYS 5
extern const char *const dna_preference_keys[DNA_PREFERENCE_KEYS];

/*
 * Read overrides from the JSON number texts of the keys of dna_preference_keys (NULL: absent or
 * not a number), as the database prints them. The same rule as dna_preferences_from_json; used
 * by the daemon, which asks the database for these five values alone, so that nothing else in
 * content_flags (however large or deep) can keep a valid value from being read. Never fails.
 */
void dna_preferences_from_numbers(const char *const texts[DNA_PREFERENCE_KEYS], struct dna_preferences *prefs);

/*
 * PostgreSQL's infinite timestamps as microseconds (what they are internally): a carbon clock of
 * +infinity makes every entry late (delta -infinity), one of -infinity makes every entry advance
 * it (delta +infinity), as SPEC 3's formulas say.
 */
#define DNA_CLOCK_INFINITY INT64_MAX
#define DNA_CLOCK_MINUS_INFINITY INT64_MIN

/* The factors of one entry applied to one DNA row. */
struct dna_step {
	bool late;                  /* entry older than the clock */
	bool advances_clock;        /* clock <- entry time */
	double delta_days;          /* entry time - clock, 0 when there is no clock */
	float keep[VEC_DOMAINS];    /* k_d: retention of the old vector */
	float late_factor[VEC_DOMAINS]; /* l_d: damping of a late entry's influence */
	float alpha[VEC_DOMAINS];   /* a_d = l_d * L * b * clamp(w_d * m_d, 0, 1) */
	double base_alpha;          /* L * b, recorded in dna_evolution */
};

/*
 * Compute the factors for an entry at entry_us (microseconds since the Unix
 * epoch) applied to a row whose carbon clock is clock_us (DNA_CLOCK_INFINITY or
 * DNA_CLOCK_MINUS_INFINITY for an infinite clock); has_clock is false when the
 * clock or the embedding is NULL (then delta is 0).
 */
void dna_compute_step(bool has_clock, int64_t clock_us, int64_t entry_us,
		      const struct influence *influence, const struct dna_preferences *prefs,
		      struct dna_step *step);

/*
 * Apply a step to v (VEC_DIM floats) in place: per domain d,
 * v_d <- (1 - a_d) * k_d * v_d + a_d * x_d, or v_d <- k_d * v_d when x is NULL.
 * Uses cblas in float32. If delta_norms is not NULL it receives the L2 norm of
 * each domain's change.
 */
void dna_apply_step(float *v, const float *x, const struct dna_step *step,
		    double delta_norms[VEC_DOMAINS]);

#endif
