/* fuzz_vec_pgvector: libFuzzer target for pgvector's binary decoder, with an encode round trip. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_vec.h"
#include "vec.h"

/* Offset and size of the header field pgvector leaves unused; the encoder writes zero there. */
#define PGVECTOR_UNUSED_OFFSET 2u
#define PGVECTOR_UNUSED_SIZE 2u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * Input: one dimension byte (see fuzz_vec.h), then the binary value. A value that decodes must
 * re-encode to the same bytes (apart from the unused field), decode again to the same bits, and
 * the encoder must refuse a buffer one byte short.
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
	if (vec_decode_pgvector(value, len, decoded, dim, err, sizeof(err)) != 0) {
		if (memchr(err, '\0', sizeof(err)) == NULL)
			abort();
		free(decoded);
		return 0;
	}
	if (!vec_all_finite(decoded, dim))
		abort();

	encoded_size = vec_pgvector_size(dim);
	if (encoded_size != len)
		abort();
	encoded = fuzz_alloc_exact(encoded_size);
	if (vec_encode_pgvector(decoded, dim, encoded, encoded_size) != (long)encoded_size)
		abort();
	if (memcmp(encoded, value, PGVECTOR_UNUSED_OFFSET) != 0 ||
	    encoded[PGVECTOR_UNUSED_OFFSET] != 0 || encoded[PGVECTOR_UNUSED_OFFSET + 1] != 0 ||
	    memcmp(encoded + PGVECTOR_UNUSED_OFFSET + PGVECTOR_UNUSED_SIZE,
		   value + PGVECTOR_UNUSED_OFFSET + PGVECTOR_UNUSED_SIZE,
		   len - PGVECTOR_UNUSED_OFFSET - PGVECTOR_UNUSED_SIZE) != 0)
		abort();
	if (vec_encode_pgvector(decoded, dim, encoded, encoded_size - 1) != -1)
		abort();

	again = fuzz_alloc_exact(dim * sizeof(float));
	if (vec_decode_pgvector(encoded, encoded_size, again, dim, err, sizeof(err)) != 0)
		abort();
	fuzz_require_same_bits(decoded, again, dim);

	free(again);
	free(encoded);
	free(decoded);
	return 0;
}
