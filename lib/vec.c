/* vec: DNA vectors in memory and their PostgreSQL wire codecs (pgvector and real[]). */
#include "vec.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Alignment of every vector buffer; one cache line, and enough for any SIMD width BLAS uses. */
#define VEC_ALIGNMENT 64

/* Byte sizes of the fixed parts of the binary layouts. */
#define PGVECTOR_HEADER 4u       /* uint16 dim, uint16 unused */
#define REAL_ARRAY_HEADER 12u    /* int32 ndim, int32 has-nulls flag, uint32 element OID */
#define REAL_ARRAY_DIMENSION 8u  /* int32 length, int32 lower bound */
#define REAL_ARRAY_ELEMENT 8u    /* int32 byte length, float4 */

/*
 * The longest "%.9g" rendering of a float is 15 characters ("-1.23456789e-38"); one more for
 * the separating comma.
 */
#define TEXT_MAX_PER_VALUE 16u
/* Longest number token the text decoder accepts; anything longer is not a float we wrote. */
#define TEXT_MAX_TOKEN 63u

static void set_error(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_error(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

float *vec_create(size_t dim)
{
	size_t size;
	float *v;

	if (dim > (SIZE_MAX - VEC_ALIGNMENT) / sizeof(float))
		return NULL;
	size = dim * sizeof(float);
	/* aligned_alloc wants a multiple of the alignment, and a size of 0 is not portable. */
	size = (size + VEC_ALIGNMENT - 1) / VEC_ALIGNMENT * VEC_ALIGNMENT;
	if (size == 0)
		size = VEC_ALIGNMENT;
	v = aligned_alloc(VEC_ALIGNMENT, size);
	if (v == NULL)
		return NULL;
	memset(v, 0, size);
	return v;
}

void vec_free(float *v)
{
	free(v);
}

const char *const vec_domain_names[VEC_DOMAINS] = {"cultural", "behavioral", "economic", "spatial"};

void vec_domain_norms(const float *v, double norms[VEC_DOMAINS])
{
	for (int d = 0; d < VEC_DOMAINS; d++) {
		const float *block = v + (size_t)d * VEC_DOMAIN_DIM;
		double sum = 0.0;

		for (size_t i = 0; i < VEC_DOMAIN_DIM; i++)
			sum += (double)block[i] * (double)block[i];
		norms[d] = sqrt(sum);
	}
}

/*
 * A float is finite unless its exponent bits are all ones (infinity, NaN). One comparison and one
 * OR per element, without a branch: the loop compiles to vector instructions (it runs once per
 * applied entry over the whole DNA).
 */
int vec_all_finite(const float *v, size_t dim)
{
	uint32_t any = 0;

	for (size_t i = 0; i < dim; i++) {
		uint32_t bits;

		memcpy(&bits, &v[i], sizeof(bits));
		any |= (uint32_t)((bits & UINT32_C(0x7f800000)) == UINT32_C(0x7f800000));
	}
	return any == 0;
}

/* Big-endian (network order) accessors; buf must hold the bytes, callers check bounds. */

static uint16_t read_u16(const unsigned char *p)
{
	return (uint16_t)((unsigned)p[0] << 8 | (unsigned)p[1]);
}

static uint32_t read_u32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static int32_t read_i32(const unsigned char *p)
{
	uint32_t u = read_u32(p);
	int32_t i;

	memcpy(&i, &u, sizeof(i));
	return i;
}

static float read_f32(const unsigned char *p)
{
	uint32_t u = read_u32(p);
	float f;

	memcpy(&f, &u, sizeof(f));
	return f;
}

static void write_u16(unsigned char *p, uint16_t u)
{
	p[0] = (unsigned char)(u >> 8);
	p[1] = (unsigned char)u;
}

static void write_u32(unsigned char *p, uint32_t u)
{
	p[0] = (unsigned char)(u >> 24);
	p[1] = (unsigned char)(u >> 16);
	p[2] = (unsigned char)(u >> 8);
	p[3] = (unsigned char)u;
}

static void write_i32(unsigned char *p, int32_t i)
{
	uint32_t u;

	memcpy(&u, &i, sizeof(u));
	write_u32(p, u);
}

static void write_f32(unsigned char *p, float f)
{
	uint32_t u;

	memcpy(&u, &f, sizeof(u));
	write_u32(p, u);
}

int vec_decode_pgvector(const unsigned char *buf, size_t len, float *out, size_t dim,
			char *err, size_t errlen)
{
	size_t got_dim;

	if (buf == NULL || len < PGVECTOR_HEADER) {
		set_error(err, errlen, "pgvector value truncated: %zu bytes, header needs %u", len,
			  PGVECTOR_HEADER);
		return -1;
	}
	/* The second uint16 is unused; pgvector writes 0 but we do not insist. */
	got_dim = read_u16(buf);
	if (got_dim != dim) {
		set_error(err, errlen, "pgvector dimension %zu, expected %zu", got_dim, dim);
		return -1;
	}
	/* dim < 65536 here, so this cannot overflow. */
	if (len != PGVECTOR_HEADER + 4 * dim) {
		set_error(err, errlen, "pgvector value %s: %zu bytes for dimension %zu, expected %zu",
			  len < PGVECTOR_HEADER + 4 * dim ? "truncated" : "has trailing bytes", len,
			  dim, PGVECTOR_HEADER + 4 * dim);
		return -1;
	}
	for (size_t i = 0; i < dim; i++) {
		float f = read_f32(buf + PGVECTOR_HEADER + 4 * i);

		if (!isfinite(f)) {
			set_error(err, errlen, "pgvector value has a non-finite element at index %zu",
				  i);
			return -1;
		}
		out[i] = f;
	}
	return 0;
}

static int is_text_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static size_t skip_text_space(const char *text, size_t len, size_t pos)
{
	while (pos < len && is_text_space(text[pos]))
		pos++;
	return pos;
}

/*
 * The text form is '[' number (',' number)* ']' with optional whitespace around every token,
 * exactly as pgvector's vector_in accepts it. The input is not NUL-terminated, so each number is
 * copied into a bounded buffer before strtof sees it; a number must be consumed entirely.
 */
int vec_decode_pgvector_text(const char *text, size_t len, float *out, size_t dim,
			     char *err, size_t errlen)
{
	char token[TEXT_MAX_TOKEN + 1];
	size_t pos = 0;
	size_t count = 0;

	if (text == NULL)
		len = 0;
	pos = skip_text_space(text, len, pos);
	if (pos >= len || text[pos] != '[') {
		set_error(err, errlen, "pgvector text must start with '['");
		return -1;
	}
	pos = skip_text_space(text, len, pos + 1);
	if (pos < len && text[pos] == ']') {
		/* "[]": only the empty vector. */
		pos++;
	} else {
		for (;;) {
			size_t start = pos;
			size_t toklen;
			char *end;
			float f;

			while (pos < len && text[pos] != ',' && text[pos] != ']' &&
			       !is_text_space(text[pos]))
				pos++;
			toklen = pos - start;
			if (toklen == 0) {
				set_error(err, errlen, "pgvector text: missing number at offset %zu",
					  start);
				return -1;
			}
			if (toklen > TEXT_MAX_TOKEN) {
				set_error(err, errlen,
					  "pgvector text: number at offset %zu is too long", start);
				return -1;
			}
			if (count >= dim) {
				set_error(err, errlen,
					  "pgvector text has more than the expected %zu values", dim);
				return -1;
			}
			memcpy(token, text + start, toklen);
			token[toklen] = '\0';
			errno = 0;
			f = strtof(token, &end);
			if (end != token + toklen) {
				set_error(err, errlen, "pgvector text: invalid number at offset %zu",
					  start);
				return -1;
			}
			/* Overflow gives an infinity, caught here; underflow is accepted as pgvector does. */
			if (!isfinite(f)) {
				set_error(err, errlen,
					  "pgvector text: non-finite or out-of-range value at index %zu",
					  count);
				return -1;
			}
			out[count++] = f;
			pos = skip_text_space(text, len, pos);
			if (pos >= len) {
				set_error(err, errlen, "pgvector text: missing ']'");
				return -1;
			}
			if (text[pos] == ']') {
				pos++;
				break;
			}
			if (text[pos] != ',') {
				set_error(err, errlen, "pgvector text: unexpected character at offset %zu",
					  pos);
				return -1;
			}
			pos = skip_text_space(text, len, pos + 1);
		}
	}
	if (skip_text_space(text, len, pos) != len) {
		set_error(err, errlen, "pgvector text: trailing characters after ']'");
		return -1;
	}
	if (count != dim) {
		set_error(err, errlen, "pgvector text has %zu values, expected %zu", count, dim);
		return -1;
	}
	return 0;
}

int vec_decode_real_array(const unsigned char *buf, size_t len, float *out, size_t dim,
			  char *err, size_t errlen)
{
	int32_t ndim;
	uint32_t oid;
	int32_t length;
	size_t pos;

	if (buf == NULL || len < REAL_ARRAY_HEADER) {
		set_error(err, errlen, "real[] value truncated: %zu bytes, header needs %u", len,
			  REAL_ARRAY_HEADER);
		return -1;
	}
	ndim = read_i32(buf);
	/* buf + 4 is the has-nulls flag; NULL elements are caught one by one below. */
	oid = read_u32(buf + 8);
	if (ndim != 1) {
		set_error(err, errlen, "real[] value has %ld dimensions, expected 1", (long)ndim);
		return -1;
	}
	if (oid != VEC_FLOAT4_OID) {
		set_error(err, errlen, "real[] element type OID %lu, expected %d (float4)",
			  (unsigned long)oid, VEC_FLOAT4_OID);
		return -1;
	}
	if (len < REAL_ARRAY_HEADER + REAL_ARRAY_DIMENSION) {
		set_error(err, errlen, "real[] value truncated: %zu bytes, header needs %u", len,
			  REAL_ARRAY_HEADER + REAL_ARRAY_DIMENSION);
		return -1;
	}
	/* The lower bound (buf + 16) may be anything; only the length matters. */
	length = read_i32(buf + REAL_ARRAY_HEADER);
	if (length < 0 || (uint64_t)length != (uint64_t)dim) {
		set_error(err, errlen, "real[] length %ld, expected %zu", (long)length, dim);
		return -1;
	}
	pos = REAL_ARRAY_HEADER + REAL_ARRAY_DIMENSION;
	for (size_t i = 0; i < dim; i++) {
		int32_t elemlen;
		float f;

		if (len - pos < 4) {
			set_error(err, errlen, "real[] value truncated at element %zu", i);
			return -1;
		}
		elemlen = read_i32(buf + pos);
		if (elemlen == -1) {
			set_error(err, errlen, "real[] value has a NULL element at index %zu", i);
			return -1;
		}
		if (elemlen != 4) {
			set_error(err, errlen, "real[] element %zu has length %ld, expected 4", i,
				  (long)elemlen);
			return -1;
		}
		pos += 4;
		if (len - pos < 4) {
			set_error(err, errlen, "real[] value truncated at element %zu", i);
			return -1;
		}
		f = read_f32(buf + pos);
		if (!isfinite(f)) {
			set_error(err, errlen, "real[] value has a non-finite element at index %zu", i);
			return -1;
		}
		out[i] = f;
		pos += 4;
	}
	if (pos != len) {
		set_error(err, errlen, "real[] value has %zu trailing bytes", len - pos);
		return -1;
	}
	return 0;
}

int vec_decode(enum vec_format format, const unsigned char *buf, size_t len, float *out,
	       size_t dim, char *err, size_t errlen)
{
	switch (format) {
	case VEC_FORMAT_REAL_ARRAY:
		return vec_decode_real_array(buf, len, out, dim, err, errlen);
	case VEC_FORMAT_PGVECTOR:
		return vec_decode_pgvector(buf, len, out, dim, err, errlen);
	}
	set_error(err, errlen, "unknown vector format %d", (int)format);
	return -1;
}

size_t vec_pgvector_size(size_t dim)
{
	return PGVECTOR_HEADER + 4 * dim;
}

/* Also -1 when dim does not fit pgvector's uint16 dimension. */
long vec_encode_pgvector(const float *v, size_t dim, unsigned char *out, size_t outlen)
{
	size_t size;

	if (dim > UINT16_MAX)
		return -1;
	size = vec_pgvector_size(dim);
	if (outlen < size)
		return -1;
	write_u16(out, (uint16_t)dim);
	write_u16(out + 2, 0);
	for (size_t i = 0; i < dim; i++)
		write_f32(out + PGVECTOR_HEADER + 4 * i, v[i]);
	return (long)size;
}

size_t vec_pgvector_text_size(size_t dim)
{
	/* '[' and ']', dim values with their commas, the NUL. */
	return 2 + TEXT_MAX_PER_VALUE * dim + 1;
}

/*
 * Writes "[v0,v1,...]" and a terminating NUL; returns the length without the NUL. "%.9g" is
 * enough digits for every float to read back bit for bit through strtof.
 */
long vec_encode_pgvector_text(const float *v, size_t dim, char *out, size_t outlen)
{
	size_t pos = 0;

	if (outlen < 3 || dim > (LONG_MAX - 3) / TEXT_MAX_PER_VALUE)
		return -1;
	out[pos++] = '[';
	for (size_t i = 0; i < dim; i++) {
		int n;

		if (i > 0) {
			if (outlen - pos < 2)
				return -1;
			out[pos++] = ',';
		}
		n = snprintf(out + pos, outlen - pos, "%.9g", (double)v[i]);
		if (n < 0 || (size_t)n >= outlen - pos)
			return -1;
		pos += (size_t)n;
	}
	if (outlen - pos < 2)
		return -1;
	out[pos++] = ']';
	out[pos] = '\0';
	return (long)pos;
}

_Static_assert(REAL_ARRAY_HEADER + REAL_ARRAY_DIMENSION == VEC_ARRAY_HEADER_SIZE, "one array header size");

void vec_write_be32(unsigned char *out, uint32_t v)
{
	write_u32(out, v);
}

uint32_t vec_read_be32(const unsigned char *in)
{
	return read_u32(in);
}

size_t vec_write_array_header(unsigned char *out, uint32_t element_oid, int32_t length, bool has_nulls)
{
	write_i32(out, 1);                     /* ndim */
	write_i32(out + 4, has_nulls ? 1 : 0); /* has-nulls flag */
	write_u32(out + 8, element_oid);       /* element type */
	write_i32(out + 12, length);           /* length */
	write_i32(out + 16, 1);                /* lower bound */
	return REAL_ARRAY_HEADER + REAL_ARRAY_DIMENSION;
}

size_t vec_pgvector_array_size(size_t dim, size_t count)
{
	return REAL_ARRAY_HEADER + REAL_ARRAY_DIMENSION + count * (4 + vec_pgvector_size(dim));
}

long vec_encode_pgvector_array(const float *v, size_t dim, size_t count, uint32_t element_oid, unsigned char *out,
			       size_t outlen)
{
	size_t element = vec_pgvector_size(dim);
	size_t size, pos;

	if (dim > UINT16_MAX || count > (size_t)INT32_MAX || element > (size_t)INT32_MAX ||
	    count > (SIZE_MAX - REAL_ARRAY_HEADER - REAL_ARRAY_DIMENSION) / (4 + element))
		return -1;
	size = vec_pgvector_array_size(dim, count);
	if (outlen < size || size > (size_t)INT32_MAX)
		return -1;
	pos = vec_write_array_header(out, element_oid, (int32_t)count, false);
	for (size_t i = 0; i < count; i++) {
		write_i32(out + pos, (int32_t)element);
		if (vec_encode_pgvector(v + i * dim, dim, out + pos + 4, element) != (long)element)
			return -1;
		pos += 4 + element;
	}
	return (long)size;
}

size_t vec_real_array_size(size_t dim)
{
	return REAL_ARRAY_HEADER + REAL_ARRAY_DIMENSION + REAL_ARRAY_ELEMENT * dim;
}

/* Also -1 when dim does not fit the int32 array length. */
long vec_encode_real_array(const float *v, size_t dim, unsigned char *out, size_t outlen)
{
	size_t size;
	size_t pos;

	if (dim > (size_t)INT32_MAX / REAL_ARRAY_ELEMENT)
		return -1;
	size = vec_real_array_size(dim);
	if (outlen < size)
		return -1;
	pos = vec_write_array_header(out, VEC_FLOAT4_OID, (int32_t)dim, false);
	for (size_t i = 0; i < dim; i++) {
		write_i32(out + pos, 4);
		write_f32(out + pos + 4, v[i]);
		pos += REAL_ARRAY_ELEMENT;
	}
	return (long)size;
}
