/* fuzz_vec_real_array: libFuzzer target for the real[] decoder, with an encode round trip. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_vec.h"
#include "vec.h"

/*
 * Header fields the decoder accepts with any value and the encoder writes canonically: the
 * has-nulls flag (0) and the lower bound (1). Every other byte must survive a round trip.
 */
#define REAL_ARRAY_FLAGS_OFFSET 4u
#define REAL_ARRAY_LBOUND_OFFSET 16u
#define REAL_ARRAY_FIELD_SIZE 4u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int field_is(const unsigned char *p, uint32_t expected)
{
	return p[0] == (unsigned char)(expected >> 24) && p[1] == (unsigned char)(expected >> 16) &&
	       p[2] == (unsigned char)(expected >> 8) && p[3] == (unsigned char)expected;
}

static int is_free_field(size_t offset)
{
	return (offset >= REAL_ARRAY_FLAGS_OFFSET &&
		offset < REAL_ARRAY_FLAGS_OFFSET + REAL_ARRAY_FIELD_SIZE) ||
	       (offset >= REAL_ARRAY_LBOUND_OFFSET &&
		offset < REAL_ARRAY_LBOUND_OFFSET + REAL_ARRAY_FIELD_SIZE);
}

/*
 * Input: one dimension byte (see fuzz_vec.h), then the array_send bytes. A value that decodes
 * must re-encode to the same bytes (apart from the two free fields, which must come out
 * canonical), decode again to the same bits, and the encoder must refuse a buffer one byte short.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const unsigned char *value;
	size_t len, dim, encoded_size;
	float *decoded, *again;
	unsigned char *encoded;
	char err[128];

	if (size == 0)
		return 0;
	dim = fuzz_vec_dim(data[0]);
	value = data + 1;
	len = size - 1;

	decoded = fuzz_alloc_exact(dim * sizeof(float));
	if (vec_decode_real_array(value, len, decoded, dim, err, sizeof(err)) != 0) {
		if (memchr(err, '\0', sizeof(err)) == NULL)
			abort();
		free(decoded);
		return 0;
	}
	if (!vec_all_finite(decoded, dim))
		abort();

	encoded_size = vec_real_array_size(dim);
	if (encoded_size != len)
		abort();
	encoded = fuzz_alloc_exact(encoded_size);
	if (vec_encode_real_array(decoded, dim, encoded, encoded_size) != (long)encoded_size)
		abort();
	for (size_t i = 0; i < len; i++) {
		if (!is_free_field(i) && encoded[i] != value[i])
			abort();
	}
	if (!field_is(encoded + REAL_ARRAY_FLAGS_OFFSET, 0) ||
	    !field_is(encoded + REAL_ARRAY_LBOUND_OFFSET, 1))
		abort();
	if (vec_encode_real_array(decoded, dim, encoded, encoded_size - 1) != -1)
		abort();

	again = fuzz_alloc_exact(dim * sizeof(float));
	if (vec_decode_real_array(encoded, encoded_size, again, dim, err, sizeof(err)) != 0)
		abort();
	fuzz_require_same_bits(decoded, again, dim);

	free(again);
	free(encoded);
	free(decoded);
	return 0;
}
