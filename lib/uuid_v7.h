/*
 * uuid_v7: time-ordered ids (RFC 9562 version 7) for the rows passportd inserts.
 *
 * Why: a random uuid key lands on a random leaf of its index, so after every checkpoint nearly
 * each insert into a large table writes a full-page image of that leaf to the WAL (measured:
 * 3,294 B of WAL per insert into a 3M-row table, against 159 B with time-ordered keys, which
 * always land on the index's rightmost leaves). The column stays uuid.
 *
 * Layout: 48 bits of Unix time in milliseconds, the version (7), a 12-bit counter, the variant
 * (binary 10), 62 random bits. Ids from one generator increase strictly: within one millisecond
 * the counter counts up, and when it runs out (4,096 ids in a millisecond) or the clock steps back
 * the generator carries on from its last millisecond. Ids of several generators (workers,
 * daemons) are ordered by their milliseconds, and within one by their random bits.
 */
#ifndef PASSPORT_UUID_V7_H
#define PASSPORT_UUID_V7_H

#include <stdint.h>

#define UUID_BYTES 16
#define UUID_TEXT_SIZE 37 /* 36 characters and the NUL */

/* A generator's state; zero-initialise it. Not thread-safe: one per worker. */
struct uuid_v7 {
	uint64_t last_ms;
	unsigned counter;
	uint64_t random_state; /* seeded from the kernel at the first id (0: not yet) */
};

/*
 * The next id (pure): now_ms is the current Unix time in milliseconds, random 8 random bytes.
 * Writes its 16 bytes into out (network order, as uuid_send sends it).
 */
void uuid_v7_next_bytes(struct uuid_v7 *g, uint64_t now_ms, const uint8_t random[8], uint8_t out[UUID_BYTES]);

/*
 * The next id at the current time. Its random bits come from a generator (splitmix64) seeded once
 * from the kernel (getrandom), not a system call per row: a batch inserts up to a thousand.
 */
void uuid_v7_generate_bytes(struct uuid_v7 *g, uint8_t out[UUID_BYTES]);

/* A uuid's 16 bytes in text form (lower-case, with hyphens). */
void uuid_format(const uint8_t bytes[UUID_BYTES], char out[UUID_TEXT_SIZE]);

#endif
