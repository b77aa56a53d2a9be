/* fuzz_vec: what the vector codec fuzz targets share: the dimension byte and the checks. */
#ifndef PASSPORT_FUZZ_VEC_H
#define PASSPORT_FUZZ_VEC_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vec.h"

/*
 * The first byte of every vector fuzz input picks the dimension the decoder is asked for (modulo
 * the table's length); the rest is the value. Small dimensions let the fuzzer reach valid values
 * quickly, and the real ones keep the seeds honest. Seeds are written by tests/fuzz/make_seeds.py.
 */
static const size_t fuzz_vec_dims[] = {0, 1, 2, 3, 4, 5, 8, 16, VEC_DOMAIN_DIM, VEC_DIM};

static inline size_t fuzz_vec_dim(uint8_t selector)
{
	return fuzz_vec_dims[selector % (sizeof(fuzz_vec_dims) / sizeof(fuzz_vec_dims[0]))];
}

/*
 * A heap buffer of exactly size bytes (at least one), so that AddressSanitizer sees any write or
 * read past the end; vec_create rounds up to a cache line and would hide small overruns.
 */
static inline void *fuzz_alloc_exact(size_t size)
{
	void *p = malloc(size ? size : 1);

	if (p == NULL)
		abort();
	return p;
}

/* Two vectors must be equal bit for bit: -0.0 is not 0.0 here. */
static inline void fuzz_require_same_bits(const float *a, const float *b, size_t dim)
{
	if (dim > 0 && memcmp(a, b, dim * sizeof(float)) != 0)
		abort();
}

#endif
