/* fuzz_vec_text: libFuzzer target for the pgvector text decoder, with an encode round trip. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_vec.h"
#include "vec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * Input: one dimension byte (see fuzz_vec.h), then the text (not NUL-terminated). A text that
 * decodes must encode within vec_pgvector_text_size, decode again to the same bits, encode the
 * same way into a buffer of exactly its length plus the NUL, and not into one byte less. The
 * binary pgvector form of the same values must carry the same bits too.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text;
	size_t len, dim, bound, binary_size;
	float *decoded, *again;
	char *encoded, *exact;
	unsigned char *binary;
	long written;
	char err[128];

	if (size == 0)
		return 0;
	dim = fuzz_vec_dim(data[0]);
	text = (const char *)data + 1;
	len = size - 1;

	decoded = fuzz_alloc_exact(dim * sizeof(float));
	if (vec_decode_pgvector_text(text, len, decoded, dim, err, sizeof(err)) != 0) {
		if (memchr(err, '\0', sizeof(err)) == NULL)
			abort();
		free(decoded);
		return 0;
	}
	if (!vec_all_finite(decoded, dim))
		abort();

	bound = vec_pgvector_text_size(dim);
	encoded = fuzz_alloc_exact(bound);
	written = vec_encode_pgvector_text(decoded, dim, encoded, bound);
	if (written < 0 || (size_t)written >= bound || strlen(encoded) != (size_t)written)
		abort();

	again = fuzz_alloc_exact(dim * sizeof(float));
	if (vec_decode_pgvector_text(encoded, (size_t)written, again, dim, err, sizeof(err)) != 0)
		abort();
	fuzz_require_same_bits(decoded, again, dim);

	exact = fuzz_alloc_exact((size_t)written + 1);
	if (vec_encode_pgvector_text(decoded, dim, exact, (size_t)written + 1) != written ||
	    memcmp(exact, encoded, (size_t)written + 1) != 0)
		abort();
	if (vec_encode_pgvector_text(decoded, dim, exact, (size_t)written) != -1)
		abort();

	binary_size = vec_pgvector_size(dim);
	binary = fuzz_alloc_exact(binary_size);
	if (vec_encode_pgvector(decoded, dim, binary, binary_size) != (long)binary_size ||
	    vec_decode_pgvector(binary, binary_size, again, dim, err, sizeof(err)) != 0)
		abort();
	fuzz_require_same_bits(decoded, again, dim);

	free(binary);
	free(exact);
	free(again);
	free(encoded);
	free(decoded);
	return 0;
}
