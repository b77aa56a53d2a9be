/* fuzz_payload: libFuzzer target for the payload parser; any input must parse or fail cleanly. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "payload.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct payload_info info;
	char err[128];
	uuid_text canonical;

	if (payload_parse((const char *)data, size, PAYLOAD_DEFAULT_MAX_BYTES, &info, err,
			  sizeof(err)) == 0) {
		/* Whatever was accepted must satisfy the header's promises. */
		if (info.target_type != TARGET_NONE &&
		    (uuid_canonical(info.target_id, canonical) != 0 ||
		     strcmp(canonical, info.target_id) != 0))
			abort();
		if (info.target_type == TARGET_NONE && info.target_id[0] != '\0')
			abort();
		if (info.amount_state == AMOUNT_VALID && info.amount_cents < 0)
			abort();
		if (info.has_dna_match_score &&
		    !(info.dna_match_score >= 0.0 && info.dna_match_score <= 1.0))
			abort();
		if (strlen(info.correlation_id) > PAYLOAD_CORRELATION_MAX)
			abort();
	} else if (memchr(err, '\0', sizeof(err)) == NULL) {
		abort();
	}
	return 0;
}
