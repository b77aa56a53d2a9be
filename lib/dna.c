/* dna: the carbon-decay and mirroring update of a 1536-float DNA (SPEC section 3). Pure, no I/O. */
#include "dna.h"

#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <cjson/cJSON.h>

/* Cultural, behavioral, economic, spatial. */
const double dna_half_life_days[VEC_DOMAINS] = {30.0, 15.0, 60.0, 90.0};

#define DNA_MIN_LEARNING_RATE 0.01
#define DNA_MAX_LEARNING_RATE 0.5
#define DNA_MIN_MULTIPLIER 0.0
#define DNA_MAX_MULTIPLIER 3.0
#define DNA_US_PER_DAY 86400e6

/* The dna_preferences keys: the learning rate, then the domain multipliers in domain order. */
const char *const dna_preference_keys[DNA_PREFERENCE_KEYS] = {
	"learningRate",
	"culturalMultiplier",
	"behavioralMultiplier",
	"economicMultiplier",
	"spatialMultiplier",
};
static const char *const *const multiplier_keys = dna_preference_keys + 1;

static void init_blas_once(void)
{
	/* OpenBLAS's cblas.h includes openblas_config.h, which defines OPENBLAS_VERSION. */
#ifdef OPENBLAS_VERSION
	int (*shutdown_threads)(void);

	openblas_set_num_threads(1);
	/*
	 * OpenBLAS's pthread build starts a server thread per further core when it is loaded, and
	 * each spins (sched_yield) for about 0.1 s before it sleeps: at the start of a drain that
	 * spinning took a core from the workers (80 ms of CPU). With one thread nothing is ever
	 * queued to them, so stop them now. blas_thread_shutdown_ is what OpenBLAS itself calls at
	 * exit; it is looked up rather than linked, since other builds (serial, OpenMP) may lack it.
	 */
	*(void **)&shutdown_threads = dlsym(RTLD_DEFAULT, "blas_thread_shutdown_");
	if (shutdown_threads)
		(void)shutdown_threads();
#endif
}

void dna_init_blas(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, init_blas_once);
}

void dna_preferences_default(struct dna_preferences *prefs)
{
	prefs->learning_rate = DNA_DEFAULT_LEARNING_RATE;
	for (int d = 0; d < VEC_DOMAINS; d++)
		prefs->multiplier[d] = 1.0;
}

/* Replace *value with the number under key when it is a finite number in [min, max]. */
static void read_bounded_number(const cJSON *object, const char *key, double min, double max,
				double *value)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, key);

	if (!cJSON_IsNumber(item))
		return;
	if (!isfinite(item->valuedouble) || item->valuedouble < min || item->valuedouble > max)
		return;
	*value = item->valuedouble;
}

void dna_preferences_from_json(const struct cJSON *dna_preferences, struct dna_preferences *prefs)
{
	dna_preferences_default(prefs);
	if (!cJSON_IsObject(dna_preferences))
		return;
	read_bounded_number(dna_preferences, "learningRate", DNA_MIN_LEARNING_RATE,
			    DNA_MAX_LEARNING_RATE, &prefs->learning_rate);
	for (int d = 0; d < VEC_DOMAINS; d++)
		read_bounded_number(dna_preferences, multiplier_keys[d], DNA_MIN_MULTIPLIER,
				    DNA_MAX_MULTIPLIER, &prefs->multiplier[d]);
}

/* Replace *value with the number text when it is a finite number in [min, max]. */
static void read_bounded_text(const char *text, double min, double max, double *value)
{
	char *end;
	double x;

	if (text == NULL || *text == '\0')
		return;
	x = strtod(text, &end);
	if (*end != '\0' || !isfinite(x) || x < min || x > max)
		return;
	*value = x;
}

void dna_preferences_from_numbers(const char *const texts[DNA_PREFERENCE_KEYS], struct dna_preferences *prefs)
{
	dna_preferences_default(prefs);
	read_bounded_text(texts[0], DNA_MIN_LEARNING_RATE, DNA_MAX_LEARNING_RATE, &prefs->learning_rate);
	for (int d = 0; d < VEC_DOMAINS; d++)
		read_bounded_text(texts[1 + d], DNA_MIN_MULTIPLIER, DNA_MAX_MULTIPLIER, &prefs->multiplier[d]);
}

/*
 * entry_us - clock_us in days. An infinite clock gives an infinite delta (SPEC 3 then still
 * defines every factor); otherwise the subtraction is done in int64.
 */
static double delta_days(int64_t clock_us, int64_t entry_us)
{
	if (clock_us == DNA_CLOCK_INFINITY)
		return -(double)INFINITY;
	if (clock_us == DNA_CLOCK_MINUS_INFINITY)
		return (double)INFINITY;
	/* Every finite timestamp is inside the range, so the int64 subtraction cannot overflow. */
	if ((clock_us < 0 && entry_us > INT64_MAX + clock_us) || (clock_us > 0 && entry_us < INT64_MIN + clock_us))
		return ((double)entry_us - (double)clock_us) / DNA_US_PER_DAY;
	return (double)(entry_us - clock_us) / DNA_US_PER_DAY;
}

static double clamp(double x, double lo, double hi)
{
	/* fmax/fmin also turn a NaN into lo. */
	return fmin(fmax(x, lo), hi);
}

void dna_compute_step(bool has_clock, int64_t clock_us, int64_t entry_us,
		      const struct influence *influence, const struct dna_preferences *prefs,
		      struct dna_step *step)
{
	struct dna_preferences defaults;
	double delta;

	if (prefs == NULL) {
		dna_preferences_default(&defaults);
		prefs = &defaults;
	}
	delta = has_clock ? delta_days(clock_us, entry_us) : 0.0;

	memset(step, 0, sizeof(*step));
	step->delta_days = delta;
	step->late = delta < 0.0;
	step->advances_clock = !step->late;
	step->base_alpha = prefs->learning_rate * influence->base;

	for (int d = 0; d < VEC_DOMAINS; d++) {
		double keep = 1.0;
		double late_factor = 1.0;
		double weight;
		double alpha;

		if (delta >= 0.0)
			keep = fmax(pow(0.5, delta / dna_half_life_days[d]), DNA_MIN_RETENTION);
		else
			late_factor = fmax(pow(0.5, -delta / dna_half_life_days[d]),
					   DNA_MIN_RETENTION);
		weight = clamp(influence->weight[d] * prefs->multiplier[d], 0.0, 1.0);
		alpha = late_factor * prefs->learning_rate * influence->base * weight;

		step->keep[d] = (float)keep;
		step->late_factor[d] = (float)late_factor;
		step->alpha[d] = (float)alpha;
	}
}

/*
 * Why the order of operations is fixed: SPEC section 3 demands that the final embeddings depend
 * only on the set of entries, bit for bit, whatever the batch size, the number of daemons or the
 * restarts in between. A row's vector is written back after every batch as float32, so every
 * intermediate state must be exactly what a one-entry-at-a-time run would produce. Hence each
 * entry is exactly this sequence of float32 roundings and nothing else:
 *
 *   c = (float)((1 - a_d) * k_d)      one rounding, computed in double
 *   v_d = c * v_d                     cblas_sscal: one rounding per element
 *   t = a_d * x_d                     a copy, then cblas_sscal: one rounding per element
 *   v_d = 1 * t + v_d                 cblas_saxpy with alpha 1: one rounding per element
 *
 * that is v_d = fl(fl(c * v_d) + fl(a_d * x_d)), the plain float32 reading of the rule.
 * Folding two entries into one call, keeping v in double between entries, using sgemv over
 * several entries, or rewriting this as v + a (x - v) would all round differently. The BLAS calls
 * are element-wise (no reductions), so their results do not depend on how OpenBLAS splits the
 * work.
 *
 * Why not one saxpy with alpha a_d: OpenBLAS picks its kernels by CPU when it loads, and its
 * Haswell and later saxpy kernels use fused multiply-add (one rounding of a*x + y) while older
 * ones do not (two roundings). Daemons on different machines would then disagree in the last
 * bit. With alpha 1 the product 1 * t is exact, so fused or not, the sum rounds once and every
 * kernel gives the same bits.
 */
void dna_apply_step(float *v, const float *x, const struct dna_step *step,
		    double delta_norms[VEC_DOMAINS])
{
	float old[VEC_DIM];

	if (delta_norms != NULL)
		memcpy(old, v, sizeof(old));
	for (int d = 0; d < VEC_DOMAINS; d++) {
		float *v_d = v + (size_t)d * VEC_DOMAIN_DIM;

		if (x != NULL) {
			const float *x_d = x + (size_t)d * VEC_DOMAIN_DIM;
			float c = (float)((1.0 - (double)step->alpha[d]) * (double)step->keep[d]);

			float t[VEC_DOMAIN_DIM];

			cblas_sscal(VEC_DOMAIN_DIM, c, v_d, 1);
			memcpy(t, x_d, sizeof(t));
			cblas_sscal(VEC_DOMAIN_DIM, step->alpha[d], t, 1);
			cblas_saxpy(VEC_DOMAIN_DIM, 1.0f, t, 1, v_d, 1);
		} else {
			cblas_sscal(VEC_DOMAIN_DIM, step->keep[d], v_d, 1);
		}
	}
	/*
	 * The change norms: per domain, the sum of the squared changes in element order, in double.
	 * The four domains' sums run side by side (four independent additions per element instead
	 * of one chain of 384 dependent ones); each sum still adds its terms in the same order, so
	 * the norms are the same bits as one domain after another.
	 */
	if (delta_norms != NULL) {
		double sum[VEC_DOMAINS] = {0.0};

		for (size_t i = 0; i < VEC_DOMAIN_DIM; i++) {
			for (int d = 0; d < VEC_DOMAINS; d++) {
				size_t k = (size_t)d * VEC_DOMAIN_DIM + i;
				double diff = (double)v[k] - (double)old[k];

				sum[d] += diff * diff;
			}
		}
		for (int d = 0; d < VEC_DOMAINS; d++)
			delta_norms[d] = sqrt(sum[d]);
	}
}
