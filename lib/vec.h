/* vec: DNA vectors in memory and their PostgreSQL wire codecs (pgvector and real[]). */
#ifndef PASSPORT_VEC_H
#define PASSPORT_VEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VEC_DIM 1536
#define VEC_DOMAIN_DIM 384
#define VEC_DOMAINS 4

/* PostgreSQL's OID of float4, the element type of real[]. */
#define VEC_FLOAT4_OID 700

enum vec_format {
	VEC_FORMAT_REAL_ARRAY = 0, /* real[] column */
	VEC_FORMAT_PGVECTOR = 1,   /* pgvector vector(1536) column */
};

/*
 * Allocate a zeroed vector of dim floats, 64-byte aligned so that BLAS kernels
 * always see the same alignment (their results must not depend on where a buffer
 * happens to live). Free with vec_free, which accepts NULL.
 */
float *vec_create(size_t dim);
void vec_free(float *v);

/*
 * The domains in order, as the DNA rule and every report name them: "cultural" [0,384),
 * "behavioral" [384,768), "economic" [768,1152), "spatial" [1152,1536).
 */
extern const char *const vec_domain_names[VEC_DOMAINS];

/*
 * The L2 norm of each domain block of v (VEC_DIM floats), summed in double in index order (a
 * report's figure, not part of the DNA rule). Pure; v must be finite for the norms to be.
 */
void vec_domain_norms(const float *v, double norms[VEC_DOMAINS]);

/* 1 when every value is finite, else 0. */
int vec_all_finite(const float *v, size_t dim);

/*
 * Decoders. Each fills out[0..dim) from a binary or text value and returns 0, or
 * returns -1 and writes a one-line reason into err (never longer than errlen).
 * They reject a truncated or overlong input, a dimension other than dim, NULLs
 * inside arrays and non-finite values. out is untouched on error only in part:
 * callers must not use it after a failure.
 */
int vec_decode_pgvector(const unsigned char *buf, size_t len, float *out, size_t dim,
			char *err, size_t errlen);
int vec_decode_pgvector_text(const char *text, size_t len, float *out, size_t dim,
			     char *err, size_t errlen);
int vec_decode_real_array(const unsigned char *buf, size_t len, float *out, size_t dim,
			  char *err, size_t errlen);
int vec_decode(enum vec_format format, const unsigned char *buf, size_t len, float *out,
	       size_t dim, char *err, size_t errlen);

/*
 * Encoders. Each writes the binary (or text) value of v[0..dim) into out and
 * returns the number of bytes written, or -1 when outlen is too small (or dim
 * does not fit the format: over 65535 for pgvector). The *_size functions give
 * the exact size needed (text: an upper bound including the terminating NUL).
 * The text encoder NUL-terminates and returns the length without the NUL; it
 * prints each value with "%.9g", which reads back bit for bit.
 */
size_t vec_pgvector_size(size_t dim);
long vec_encode_pgvector(const float *v, size_t dim, unsigned char *out, size_t outlen);
size_t vec_pgvector_text_size(size_t dim);
long vec_encode_pgvector_text(const float *v, size_t dim, char *out, size_t outlen);
size_t vec_real_array_size(size_t dim);
long vec_encode_real_array(const float *v, size_t dim, unsigned char *out, size_t outlen);

/*
 * PostgreSQL's binary array format, shared with strbuf's binary array parameters: the header of a
 * one-dimensional array (ndim 1, the has-nulls flag, element type, length, lower bound 1), and a
 * big-endian uint32. The header is VEC_ARRAY_HEADER_SIZE bytes; the function returns that size.
 */
#define VEC_ARRAY_HEADER_SIZE 20
size_t vec_write_array_header(unsigned char *out, uint32_t element_oid, int32_t length, bool has_nulls);
void vec_write_be32(unsigned char *out, uint32_t v);
uint32_t vec_read_be32(const unsigned char *in);

/*
 * A one-dimensional vector[] of count pgvector values (v holds them side by side, dim floats
 * each), in PostgreSQL's binary array format with element type element_oid (the vector type's
 * OID in the database at hand, which the server checks against the parameter's type). Returns
 * the bytes written, or -1 when outlen is too small or the sizes do not fit the format.
 */
size_t vec_pgvector_array_size(size_t dim, size_t count);
long vec_encode_pgvector_array(const float *v, size_t dim, size_t count, uint32_t element_oid, unsigned char *out,
			       size_t outlen);

#endif
