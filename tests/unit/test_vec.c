/* test_vec: the vector buffers and the pgvector / real[] codecs, against hand-built bytes. */
#include <float.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "task.h"
#include "vec.h"

#define SMALL_DIM 3

/* dim 3: 1.0, -2.5, 0.5 in pgvector's binary form (uint16 dim, uint16 unused, float4s). */
static const unsigned char pgvector_small[] = {
	0x00, 0x03, 0x00, 0x00,
	0x3f, 0x80, 0x00, 0x00,
	0xc0, 0x20, 0x00, 0x00,
	0x3f, 0x00, 0x00, 0x00,
};

/* The same values as PostgreSQL's array_send of real[] '{1,-2.5,0.5}'. */
static const unsigned char real_array_small[] = {
	0x00, 0x00, 0x00, 0x01, /* ndim 1 */
	0x00, 0x00, 0x00, 0x00, /* no nulls */
	0x00, 0x00, 0x02, 0xbc, /* element type 700, float4 */
	0x00, 0x00, 0x00, 0x03, /* length 3 */
	0x00, 0x00, 0x00, 0x01, /* lower bound 1 */
	0x00, 0x00, 0x00, 0x04, 0x3f, 0x80, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x04, 0xc0, 0x20, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x04, 0x3f, 0x00, 0x00, 0x00,
};

static const float small_values[SMALL_DIM] = {1.0f, -2.5f, 0.5f};

/* Offsets of the pieces of real_array_small a test may overwrite. */
#define RA_NDIM 0
#define RA_FLAGS 4
#define RA_OID 8
#define RA_LENGTH 12
#define RA_LBOUND 16
#define RA_ELEM(i) (20 + 8 * (i))

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

/* xorshift64*: a fixed sequence, so failures reproduce. */
static uint32_t next_random(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 0x2545f4914f6cdd1du) >> 32);
}

/* A float with random bits (any exponent, subnormals included), never NaN or infinite. */
static float random_finite_float(void)
{
	for (;;) {
		uint32_t bits = next_random();
		float f;

		memcpy(&f, &bits, sizeof(f));
		if (isfinite(f))
			return f;
	}
}

/* A mix of awkward values and random bit patterns. */
static void fill_awkward(float *v, size_t dim)
{
	static const float special[] = {
		0.0f, -0.0f, 1.0f, -1.0f, FLT_MAX, -FLT_MAX, FLT_MIN, -FLT_MIN,
		1.40129846e-45f, -1.40129846e-45f, 0.1f, 1.0f / 3.0f, 16777217.0f, 1e-38f,
		-3e-05f, 123456.789f,
	};
	size_t nspecial = sizeof(special) / sizeof(special[0]);

	for (size_t i = 0; i < dim; i++)
		v[i] = i < nspecial ? special[i] : random_finite_float();
}

static void set_be32(unsigned char *p, uint32_t u)
{
	p[0] = (unsigned char)(u >> 24);
	p[1] = (unsigned char)(u >> 16);
	p[2] = (unsigned char)(u >> 8);
	p[3] = (unsigned char)u;
}

static void test_create(void)
{
	float *v = vec_create(VEC_DIM);
	float *empty = vec_create(0);
	float *odd = vec_create(5);

	ASSERT_TRUE(v != NULL);
	ASSERT_EQ_INT((uintptr_t)v % 64, 0);
	for (size_t i = 0; i < VEC_DIM; i++)
		ASSERT_TRUE(v[i] == 0.0f);
	ASSERT_TRUE(empty != NULL);
	ASSERT_TRUE(odd != NULL);
	ASSERT_EQ_INT((uintptr_t)odd % 64, 0);
	for (size_t i = 0; i < 5; i++)
		ASSERT_TRUE(odd[i] == 0.0f);
	ASSERT_TRUE(vec_create(SIZE_MAX / 2) == NULL);
	vec_free(v);
	vec_free(empty);
	vec_free(odd);
	vec_free(NULL);
}

static void test_all_finite(void)
{
	float v[4] = {0.0f, -1.0f, FLT_MAX, 1.40129846e-45f};

	ASSERT_EQ_INT(vec_all_finite(v, 4), 1);
	ASSERT_EQ_INT(vec_all_finite(v, 0), 1);
	v[2] = INFINITY;
	ASSERT_EQ_INT(vec_all_finite(v, 4), 0);
	v[2] = -INFINITY;
	ASSERT_EQ_INT(vec_all_finite(v, 4), 0);
	v[2] = NAN;
	ASSERT_EQ_INT(vec_all_finite(v, 4), 0);
	v[2] = -NAN;
	ASSERT_EQ_INT(vec_all_finite(v, 4), 0);
	/* A whole DNA's length, one bad element anywhere (the check runs in vector-wide steps). */
	{
		static float dna[VEC_DIM];

		for (size_t i = 0; i < VEC_DIM; i++)
			dna[i] = (i % 2 ? -1.0f : 1.0f) * (float)i * 1e30f;
		ASSERT_EQ_INT(vec_all_finite(dna, VEC_DIM), 1);
		for (size_t at = 0; at < VEC_DIM; at += 97) {
			float kept = dna[at];
			dna[at] = at % 2 ? NAN : -INFINITY;
			ASSERT_EQ_INT(vec_all_finite(dna, VEC_DIM), 0);
			dna[at] = kept;
		}
		dna[VEC_DIM - 1] = INFINITY;
		ASSERT_EQ_INT(vec_all_finite(dna, VEC_DIM), 0);
		ASSERT_EQ_INT(vec_all_finite(dna, VEC_DIM - 1), 1);
	}
}

static void test_pgvector_layout(void)
{
	unsigned char buf[sizeof(pgvector_small)];
	unsigned char odd[sizeof(pgvector_small)];
	float out[SMALL_DIM];
	char err[128] = "";

	ASSERT_EQ_INT(vec_pgvector_size(SMALL_DIM), sizeof(pgvector_small));
	ASSERT_EQ_INT(vec_decode_pgvector(pgvector_small, sizeof(pgvector_small), out, SMALL_DIM,
					  err, sizeof(err)), 0);
	ASSERT_EQ_DBL(out[0], 1.0, 0);
	ASSERT_EQ_DBL(out[1], -2.5, 0);
	ASSERT_EQ_DBL(out[2], 0.5, 0);

	ASSERT_EQ_INT(vec_encode_pgvector(small_values, SMALL_DIM, buf, sizeof(buf)),
		      sizeof(pgvector_small));
	ASSERT_TRUE(memcmp(buf, pgvector_small, sizeof(buf)) == 0);
	ASSERT_EQ_INT(vec_encode_pgvector(small_values, SMALL_DIM, buf, sizeof(buf) - 1), -1);

	/* The unused half-word is written as 0 but any value is accepted. */
	memcpy(odd, pgvector_small, sizeof(odd));
	odd[2] = 0x12;
	odd[3] = 0x34;
	ASSERT_EQ_INT(vec_decode_pgvector(odd, sizeof(odd), out, SMALL_DIM, err, sizeof(err)), 0);
	ASSERT_EQ_DBL(out[1], -2.5, 0);

	ASSERT_EQ_INT(vec_decode(VEC_FORMAT_PGVECTOR, pgvector_small, sizeof(pgvector_small), out,
				 SMALL_DIM, err, sizeof(err)), 0);
	ASSERT_EQ_DBL(out[2], 0.5, 0);
}

/*
 * Two dim-2 vectors, [1,-2.5] and [0.5,0], as PostgreSQL's array_send of a vector[] whose element
 * type has OID 16390 (pgvector's is whatever the database gave it): the array header, then each
 * element's byte length and its pgvector binary form.
 */
static const unsigned char pgvector_array_pair[] = {
	0x00, 0x00, 0x00, 0x01, /* ndim 1 */
	0x00, 0x00, 0x00, 0x00, /* no nulls */
	0x00, 0x00, 0x40, 0x06, /* element type 16390 */
	0x00, 0x00, 0x00, 0x02, /* length 2 */
	0x00, 0x00, 0x00, 0x01, /* lower bound 1 */
	0x00, 0x00, 0x00, 0x0c, 0x00, 0x02, 0x00, 0x00, 0x3f, 0x80, 0x00, 0x00, 0xc0, 0x20, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x0c, 0x00, 0x02, 0x00, 0x00, 0x3f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
};

static void test_pgvector_array_layout(void)
{
	const float pair[] = {1.0f, -2.5f, 0.5f, 0.0f};
	unsigned char buf[sizeof(pgvector_array_pair)];

	ASSERT_EQ_INT(vec_pgvector_array_size(2, 2), sizeof(pgvector_array_pair));
	ASSERT_EQ_INT(vec_encode_pgvector_array(pair, 2, 2, 16390, buf, sizeof(buf)), sizeof(pgvector_array_pair));
	ASSERT_TRUE(memcmp(buf, pgvector_array_pair, sizeof(buf)) == 0);
	ASSERT_EQ_INT(vec_encode_pgvector_array(pair, 2, 2, 16390, buf, sizeof(buf) - 1), -1);
	/* An empty array still has its one dimension, of length 0. */
	ASSERT_EQ_INT(vec_encode_pgvector_array(pair, 2, 0, 16390, buf, sizeof(buf)), 20);
	ASSERT_TRUE(memcmp(buf, pgvector_array_pair, 12) == 0);
	ASSERT_TRUE(buf[15] == 0 && buf[19] == 1);
	ASSERT_EQ_INT(vec_encode_pgvector_array(pair, 70000, 1, 16390, buf, sizeof(buf)), -1);
}

static void expect_pgvector_error(const unsigned char *buf, size_t len, size_t dim)
{
	float out[VEC_DIM + 1];
	char err[128] = "";

	ASSERT_EQ_INT(vec_decode_pgvector(buf, len, out, dim, err, sizeof(err)), -1);
	ASSERT_TRUE(err[0] != '\0');
	ASSERT_TRUE(strchr(err, '\n') == NULL);
}

static void test_pgvector_rejects(void)
{
	unsigned char buf[sizeof(pgvector_small) + 1];
	static const unsigned char nan_bytes[4] = {0x7f, 0xc0, 0x00, 0x00};
	static const unsigned char inf_bytes[4] = {0x7f, 0x80, 0x00, 0x00};
	static const unsigned char ninf_bytes[4] = {0xff, 0x80, 0x00, 0x00};

	/* Every truncation, each copied to a buffer of exactly that size so ASan sees overreads. */
	for (size_t len = 0; len < sizeof(pgvector_small); len++) {
		unsigned char *exact = malloc(len > 0 ? len : 1);

		ASSERT_TRUE(exact != NULL);
		memcpy(exact, pgvector_small, len);
		expect_pgvector_error(exact, len, SMALL_DIM);
		free(exact);
	}
	expect_pgvector_error(NULL, 0, SMALL_DIM);

	/* A trailing byte. */
	memcpy(buf, pgvector_small, sizeof(pgvector_small));
	buf[sizeof(pgvector_small)] = 0;
	expect_pgvector_error(buf, sizeof(buf), SMALL_DIM);

	/* Dimension mismatches both ways. */
	expect_pgvector_error(pgvector_small, sizeof(pgvector_small), 2);
	expect_pgvector_error(pgvector_small, sizeof(pgvector_small), 4);
	expect_pgvector_error(pgvector_small, sizeof(pgvector_small), VEC_DIM);

	/* The header says 4 but only 3 values follow. */
	memcpy(buf, pgvector_small, sizeof(pgvector_small));
	buf[1] = 4;
	expect_pgvector_error(buf, sizeof(pgvector_small), 4);

	/* NaN, +Inf and -Inf elements. */
	memcpy(buf, pgvector_small, sizeof(pgvector_small));
	memcpy(buf + 8, nan_bytes, 4);
	expect_pgvector_error(buf, sizeof(pgvector_small), SMALL_DIM);
	memcpy(buf + 8, inf_bytes, 4);
	expect_pgvector_error(buf, sizeof(pgvector_small), SMALL_DIM);
	memcpy(buf + 8, ninf_bytes, 4);
	expect_pgvector_error(buf, sizeof(pgvector_small), SMALL_DIM);
}

static void test_real_array_layout(void)
{
	unsigned char buf[sizeof(real_array_small)];
	float out[SMALL_DIM];
	char err[128] = "";

	ASSERT_EQ_INT(vec_real_array_size(SMALL_DIM), sizeof(real_array_small));
	ASSERT_EQ_INT(vec_decode_real_array(real_array_small, sizeof(real_array_small), out,
					    SMALL_DIM, err, sizeof(err)), 0);
	ASSERT_EQ_DBL(out[0], 1.0, 0);
	ASSERT_EQ_DBL(out[1], -2.5, 0);
	ASSERT_EQ_DBL(out[2], 0.5, 0);

	ASSERT_EQ_INT(vec_encode_real_array(small_values, SMALL_DIM, buf, sizeof(buf)),
		      sizeof(real_array_small));
	ASSERT_TRUE(memcmp(buf, real_array_small, sizeof(buf)) == 0);
	ASSERT_EQ_INT(vec_encode_real_array(small_values, SMALL_DIM, buf, sizeof(buf) - 1), -1);

	/* Any lower bound is accepted ('[0:2]={...}', '[-5:-3]={...}'). */
	memcpy(buf, real_array_small, sizeof(buf));
	set_be32(buf + RA_LBOUND, 0);
	ASSERT_EQ_INT(vec_decode_real_array(buf, sizeof(buf), out, SMALL_DIM, err, sizeof(err)), 0);
	set_be32(buf + RA_LBOUND, (uint32_t)-5);
	ASSERT_EQ_INT(vec_decode_real_array(buf, sizeof(buf), out, SMALL_DIM, err, sizeof(err)), 0);
	ASSERT_EQ_DBL(out[1], -2.5, 0);

	ASSERT_EQ_INT(vec_decode(VEC_FORMAT_REAL_ARRAY, real_array_small, sizeof(real_array_small),
				 out, SMALL_DIM, err, sizeof(err)), 0);
	ASSERT_EQ_DBL(out[0], 1.0, 0);
}

static void expect_real_array_error(const unsigned char *buf, size_t len, size_t dim)
{
	float out[VEC_DIM + 1];
	char err[128] = "";

	ASSERT_EQ_INT(vec_decode_real_array(buf, len, out, dim, err, sizeof(err)), -1);
	ASSERT_TRUE(err[0] != '\0');
	ASSERT_TRUE(strchr(err, '\n') == NULL);
}

static void test_real_array_rejects(void)
{
	unsigned char buf[sizeof(real_array_small) + 1];
	static const unsigned char nan_bytes[4] = {0x7f, 0xc0, 0x00, 0x00};
	static const unsigned char inf_bytes[4] = {0x7f, 0x80, 0x00, 0x00};

	for (size_t len = 0; len < sizeof(real_array_small); len++) {
		unsigned char *exact = malloc(len > 0 ? len : 1);

		ASSERT_TRUE(exact != NULL);
		memcpy(exact, real_array_small, len);
		expect_real_array_error(exact, len, SMALL_DIM);
		free(exact);
	}
	expect_real_array_error(NULL, 0, SMALL_DIM);

	memcpy(buf, real_array_small, sizeof(real_array_small));
	buf[sizeof(real_array_small)] = 0;
	expect_real_array_error(buf, sizeof(buf), SMALL_DIM);

	expect_real_array_error(real_array_small, sizeof(real_array_small), 2);
	expect_real_array_error(real_array_small, sizeof(real_array_small), 4);
	expect_real_array_error(real_array_small, sizeof(real_array_small), VEC_DIM);

#define MUTATE(offset, value)                                                                 \
	do {                                                                                  \
		memcpy(buf, real_array_small, sizeof(real_array_small));                     \
		set_be32(buf + (offset), (value));                                            \
		expect_real_array_error(buf, sizeof(real_array_small), SMALL_DIM);            \
	} while (0)

	MUTATE(RA_NDIM, 0);              /* the empty array */
	MUTATE(RA_NDIM, 2);
	MUTATE(RA_NDIM, (uint32_t)-1);
	MUTATE(RA_OID, 701);             /* float8 */
	MUTATE(RA_OID, 0);
	MUTATE(RA_LENGTH, 2);
	MUTATE(RA_LENGTH, 4);
	MUTATE(RA_LENGTH, (uint32_t)-3);
	MUTATE(RA_LENGTH, 0x7fffffffu);
	MUTATE(RA_ELEM(1), 0xffffffffu); /* a NULL element */
	MUTATE(RA_ELEM(1), 8);
	MUTATE(RA_ELEM(1), 0);
	MUTATE(RA_ELEM(2), 3);
	MUTATE(RA_ELEM(2), 0x7fffffffu);
#undef MUTATE

	memcpy(buf, real_array_small, sizeof(real_array_small));
	memcpy(buf + RA_ELEM(1) + 4, nan_bytes, 4);
	expect_real_array_error(buf, sizeof(real_array_small), SMALL_DIM);
	memcpy(buf + RA_ELEM(1) + 4, inf_bytes, 4);
	expect_real_array_error(buf, sizeof(real_array_small), SMALL_DIM);

	/* A well-formed NULL element: length -1 and no data bytes, has-nulls flag set. */
	memcpy(buf, real_array_small, RA_ELEM(2));
	set_be32(buf + RA_FLAGS, 1);
	set_be32(buf + RA_ELEM(1), 0xffffffffu);
	memcpy(buf + RA_ELEM(1) + 4, real_array_small + RA_ELEM(2), 8);
	expect_real_array_error(buf, RA_ELEM(1) + 4 + 8, SMALL_DIM);
}

static void test_text_layout(void)
{
	static const char spaced[] = " \t[ 1 ,\t2.5\n, -3e-05 ] \n";
	static const char expected_text[] = "[1,-2.5,0.5]";
	char text[64];
	float out[SMALL_DIM];
	char err[128] = "";
	float tiny[SMALL_DIM] = {1.0f, 2.5f, -3e-05f};

	ASSERT_EQ_INT(vec_decode_pgvector_text(spaced, strlen(spaced), out, SMALL_DIM, err,
					       sizeof(err)), 0);
	ASSERT_EQ_DBL(out[0], 1.0f, 0);
	ASSERT_EQ_DBL(out[1], 2.5f, 0);
	ASSERT_EQ_DBL(out[2], -3e-05f, 0);

	ASSERT_EQ_INT(vec_encode_pgvector_text(small_values, SMALL_DIM, text, sizeof(text)),
		      strlen(expected_text));
	ASSERT_STR_EQ(text, expected_text);
	/* -3e-05f is really -2.99999992e-05; nine digits say so. */
	ASSERT_EQ_INT(vec_encode_pgvector_text(tiny, SMALL_DIM, text, sizeof(text)), 23);
	ASSERT_STR_EQ(text, "[1,2.5,-2.99999992e-05]");
	ASSERT_TRUE(vec_pgvector_text_size(SMALL_DIM) >= sizeof("[1,2.5,-2.99999992e-05]"));

	/* Too small by one: the NUL does not fit. */
	ASSERT_EQ_INT(vec_encode_pgvector_text(small_values, SMALL_DIM, text, strlen(expected_text)),
		      -1);
	ASSERT_EQ_INT(vec_encode_pgvector_text(small_values, SMALL_DIM, text,
					       strlen(expected_text) + 1),
		      strlen(expected_text));
	ASSERT_STR_EQ(text, expected_text);
	ASSERT_EQ_INT(vec_encode_pgvector_text(small_values, SMALL_DIM, text, 0), -1);

	/* The input need not be NUL-terminated: only len bytes count. */
	ASSERT_EQ_INT(vec_decode_pgvector_text("[1,2,3]999", 7, out, SMALL_DIM, err, sizeof(err)),
		      0);
	ASSERT_EQ_DBL(out[2], 3.0, 0);
	ASSERT_EQ_INT(vec_decode_pgvector_text("[1,2,3]", 6, out, SMALL_DIM, err, sizeof(err)), -1);
	ASSERT_EQ_INT(vec_decode_pgvector_text("[1,2,35]", 6, out, SMALL_DIM, err, sizeof(err)), -1);

	/* The empty vector exists only for dim 0. */
	ASSERT_EQ_INT(vec_decode_pgvector_text("[ ]", 3, out, 0, err, sizeof(err)), 0);
	ASSERT_EQ_INT(vec_encode_pgvector_text(out, 0, text, sizeof(text)), 2);
	ASSERT_STR_EQ(text, "[]");
}

/*
 * A buffer of exactly dim floats (one byte when dim is 0): a decoder that writes one element too
 * many writes past it, which the sanitizer build reports. vec_create rounds up to a cache line
 * and a stack array of VEC_DIM + 1 would hide such a write.
 */
static float *exact_floats(size_t dim)
{
	float *out = malloc(dim ? dim * sizeof(float) : 1);

	ASSERT_TRUE(out != NULL);
	return out;
}

static void expect_text_error(const char *text, size_t len, size_t dim)
{
	float *out = exact_floats(dim);
	char err[128] = "";

	ASSERT_EQ_INT(vec_decode_pgvector_text(text, len, out, dim, err, sizeof(err)), -1);
	ASSERT_TRUE(err[0] != '\0');
	ASSERT_TRUE(strchr(err, '\n') == NULL);
	free(out);
}

/* One element more than dim, for every small dim and for the real ones, into exact buffers. */
static void test_text_one_too_many(void)
{
	static const size_t dims[] = {0, 1, 2, 3, 4, 5, 8, 16, VEC_DOMAIN_DIM, VEC_DIM};
	char *text = malloc(16 * (VEC_DIM + 2));
	char err[128];

	ASSERT_TRUE(text != NULL);
	for (size_t k = 0; k < sizeof(dims) / sizeof(dims[0]); k++) {
		size_t dim = dims[k], len = 0;
		float *out;

		/* Exactly dim elements decode into exactly dim floats... */
		text[len++] = '[';
		for (size_t i = 0; i < dim; i++)
			len += (size_t)sprintf(text + len, "%s%zu.5", i ? "," : "", i);
		text[len++] = ']';
		out = exact_floats(dim);
		ASSERT_EQ_INT(vec_decode_pgvector_text(text, len, out, dim, err, sizeof(err)), 0);
		if (dim > 0)
			ASSERT_EQ_DBL(out[dim - 1], (double)(dim - 1) + 0.5, 0);
		free(out);
		/* ...and dim + 1 are refused without a write past them. */
		len--;
		len += (size_t)sprintf(text + len, "%s7]", dim ? "," : "");
		expect_text_error(text, len, dim);
	}
	free(text);
}

static void test_text_rejects(void)
{
	test_text_one_too_many();
	static const char *const bad[] = {
		"",
		"   ",
		"1,2,3",
		"1,2,3]",
		"(1,2,3)",
		"{1,2,3}",
		"[1,2,3",
		"[1,2,3,",
		"[1,2,3]x",
		"[1,2,3] ]",
		"[1,2,3][",
		"[1,,3]",
		"[,1,2,3]",
		"[1,2,3,]",
		"[1 2,3]",
		"[1,2 3]",
		"[1,2,3abc]",
		"[1,2,3.0.0]",
		"[1,2,--3]",
		"[1,2,e5]",
		"[1,2,+]",
		"[nan,1,2]",
		"[1,NaN,2]",
		"[inf,1,2]",
		"[1,-inf,2]",
		"[1,2,Infinity]",
		"[1e39,1,2]",
		"[1,-1e39,2]",
		"[1,2]",
		"[1,2,3,4]",
		"[]",
		"[[1,2,3]]",
		"[1;2;3]",
		"[\"1\",2,3]",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_text_error(bad[i], strlen(bad[i]), SMALL_DIM);
	expect_text_error(NULL, 0, SMALL_DIM);
	/* An embedded NUL is garbage, not an end. */
	expect_text_error("[1\0,2,3]", 8, SMALL_DIM);
	expect_text_error("[1,2,3]\0", 8, SMALL_DIM);

	/* A number longer than any float we would write. */
	{
		char longnum[200];

		memset(longnum, '1', sizeof(longnum));
		longnum[0] = '[';
		memcpy(longnum + sizeof(longnum) - 5, ",2,3]", 5);
		expect_text_error(longnum, sizeof(longnum), SMALL_DIM);
	}

	/* More values than dim must stop before writing past out. */
	{
		float *out = exact_floats(2);
		char err[64];

		ASSERT_EQ_INT(vec_decode_pgvector_text("[1,2,3,4,5,6,7,8]", 17, out, 2, err,
						       sizeof(err)), -1);
		ASSERT_EQ_INT(vec_decode_pgvector_text("[1,2,3]", 7, out, 2, err, sizeof(err)), -1);
		free(out);
	}
}

static void test_error_buffers(void)
{
	float out[SMALL_DIM];
	char err[8];

	memset(err, 'x', sizeof(err));
	ASSERT_EQ_INT(vec_decode_pgvector(pgvector_small, 5, out, SMALL_DIM, err, sizeof(err)), -1);
	ASSERT_EQ_INT(strlen(err), sizeof(err) - 1);
	memset(err, 'x', sizeof(err));
	ASSERT_EQ_INT(vec_decode_real_array(real_array_small, 5, out, SMALL_DIM, err, sizeof(err)),
		      -1);
	ASSERT_EQ_INT(strlen(err), sizeof(err) - 1);
	memset(err, 'x', sizeof(err));
	ASSERT_EQ_INT(vec_decode_pgvector_text("[x]", 3, out, SMALL_DIM, err, sizeof(err)), -1);
	ASSERT_EQ_INT(strlen(err), sizeof(err) - 1);

	ASSERT_EQ_INT(vec_decode_pgvector(pgvector_small, 5, out, SMALL_DIM, NULL, 0), -1);
	ASSERT_EQ_INT(vec_decode_real_array(real_array_small, 5, out, SMALL_DIM, NULL, 0), -1);
	ASSERT_EQ_INT(vec_decode_pgvector_text("[x]", 3, out, SMALL_DIM, NULL, 0), -1);
	ASSERT_EQ_INT(vec_decode((enum vec_format)7, pgvector_small, sizeof(pgvector_small), out,
				 SMALL_DIM, NULL, 0), -1);
	err[0] = '\0';
	ASSERT_EQ_INT(vec_decode((enum vec_format)7, pgvector_small, sizeof(pgvector_small), out,
				 SMALL_DIM, err, sizeof(err)), -1);
	ASSERT_TRUE(err[0] != '\0');
}

static void test_round_trips(void)
{
	float *v = vec_create(VEC_DIM);
	float *back = vec_create(VEC_DIM);
	size_t pg_size = vec_pgvector_size(VEC_DIM);
	size_t ra_size = vec_real_array_size(VEC_DIM);
	size_t text_size = vec_pgvector_text_size(VEC_DIM);
	unsigned char *pg = malloc(pg_size);
	unsigned char *ra = malloc(ra_size);
	char *text = malloc(text_size);
	char err[128] = "";

	ASSERT_TRUE(v != NULL && back != NULL && pg != NULL && ra != NULL && text != NULL);
	ASSERT_EQ_INT(pg_size, 4 + 4 * VEC_DIM);
	ASSERT_EQ_INT(ra_size, 20 + 8 * VEC_DIM);

	/* Many rounds of random bit patterns: every float must survive every format exactly. */
	for (int round = 0; round < 50; round++) {
		long n;

		fill_awkward(v, VEC_DIM);

		n = vec_encode_pgvector(v, VEC_DIM, pg, pg_size);
		ASSERT_EQ_INT(n, pg_size);
		ASSERT_EQ_INT(pg[0], VEC_DIM >> 8);
		ASSERT_EQ_INT(pg[1], VEC_DIM & 0xff);
		ASSERT_EQ_INT(pg[2], 0);
		ASSERT_EQ_INT(pg[3], 0);
		memset(back, 0xff, VEC_DIM * sizeof(float));
		ASSERT_EQ_INT(vec_decode_pgvector(pg, pg_size, back, VEC_DIM, err, sizeof(err)), 0);
		ASSERT_TRUE(memcmp(v, back, VEC_DIM * sizeof(float)) == 0);

		n = vec_encode_real_array(v, VEC_DIM, ra, ra_size);
		ASSERT_EQ_INT(n, ra_size);
		memset(back, 0xff, VEC_DIM * sizeof(float));
		ASSERT_EQ_INT(vec_decode_real_array(ra, ra_size, back, VEC_DIM, err, sizeof(err)), 0);
		ASSERT_TRUE(memcmp(v, back, VEC_DIM * sizeof(float)) == 0);

		n = vec_encode_pgvector_text(v, VEC_DIM, text, text_size);
		ASSERT_TRUE(n > 0 && (size_t)n < text_size);
		ASSERT_EQ_INT(strlen(text), n);
		memset(back, 0xff, VEC_DIM * sizeof(float));
		ASSERT_EQ_INT(vec_decode_pgvector_text(text, (size_t)n, back, VEC_DIM, err,
						       sizeof(err)), 0);
		ASSERT_TRUE(memcmp(v, back, VEC_DIM * sizeof(float)) == 0);

		/* The 1536 buffers are still strict about their neighbours' dimensions. */
		ASSERT_EQ_INT(vec_decode_pgvector(pg, pg_size, back, VEC_DIM - 1, err, sizeof(err)),
			      -1);
		ASSERT_EQ_INT(vec_decode_real_array(ra, ra_size - 1, back, VEC_DIM, err,
						    sizeof(err)), -1);
		ASSERT_EQ_INT(vec_decode_pgvector_text(text, (size_t)n, back, VEC_DIM - 1, err,
						       sizeof(err)), -1);
	}

	/* The worst case for the text size bound: every value as long as "%.9g" gets. */
	for (size_t i = 0; i < VEC_DIM; i++)
		v[i] = i % 2 ? -1.17549435e-38f : -1.40129846e-45f;
	ASSERT_TRUE(vec_encode_pgvector_text(v, VEC_DIM, text, text_size) > 0);
	ASSERT_EQ_INT(vec_decode_pgvector_text(text, strlen(text), back, VEC_DIM, err, sizeof(err)),
		      0);
	ASSERT_TRUE(memcmp(v, back, VEC_DIM * sizeof(float)) == 0);

	/* Every encoder refuses a buffer one byte short. */
	ASSERT_EQ_INT(vec_encode_pgvector(v, VEC_DIM, pg, pg_size - 1), -1);
	ASSERT_EQ_INT(vec_encode_real_array(v, VEC_DIM, ra, ra_size - 1), -1);
	ASSERT_EQ_INT(vec_encode_pgvector_text(v, VEC_DIM, text, strlen(text)), -1);
	/* pgvector cannot express more than 65535 dimensions. */
	ASSERT_EQ_INT(vec_encode_pgvector(v, 70000, pg, pg_size), -1);

	vec_free(v);
	vec_free(back);
	free(pg);
	free(ra);
	free(text);
}

/* Each domain's norm covers exactly its block: 3-4-0 in one block, zero elsewhere. */
static void test_domain_norms(void)
{
	float *v = vec_create(VEC_DIM);
	double norms[VEC_DOMAINS];

	ASSERT_NOT_NULL(v);
	vec_domain_norms(v, norms);
	for (int d = 0; d < VEC_DOMAINS; d++)
		ASSERT_EQ_DBL(norms[d], 0.0, 0);
	v[VEC_DOMAIN_DIM] = 3.0f;         /* first value of behavioral */
	v[2 * VEC_DOMAIN_DIM - 1] = 4.0f; /* last value of behavioral */
	for (size_t i = 3 * VEC_DOMAIN_DIM; i < VEC_DIM; i++)
		v[i] = 0.5f;
	vec_domain_norms(v, norms);
	ASSERT_EQ_DBL(norms[0], 0.0, 0);
	ASSERT_EQ_DBL(norms[1], 5.0, 0);
	ASSERT_EQ_DBL(norms[2], 0.0, 0);
	ASSERT_EQ_DBL(norms[3], 0.5 * sqrt((double)VEC_DOMAIN_DIM), 1e-12);
	ASSERT_STR_EQ(vec_domain_names[0], "cultural");
	ASSERT_STR_EQ(vec_domain_names[3], "spatial");
	vec_free(v);
}

int main(void)
{
	test_create();
	test_domain_norms();
	test_all_finite();
	test_pgvector_layout();
	test_pgvector_rejects();
	test_pgvector_array_layout();
	test_real_array_layout();
	test_real_array_rejects();
	test_text_layout();
	test_text_rejects();
	test_error_buffers();
	test_round_trips();
	TEST_PASS();
}
