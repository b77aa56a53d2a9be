/* uuid_v7: time-ordered ids (the layout and the ordering rules are in uuid_v7.h). */
#include "uuid_v7.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define COUNTER_MAX 0xfffu

void uuid_v7_next(struct uuid_v7 *g, uint64_t now_ms, const uint8_t random[8], char out[UUID_TEXT_SIZE])
{
	uint8_t b[16];
	uint64_t ms;

	if (now_ms > g->last_ms) {
		g->last_ms = now_ms;
		g->counter = 0;
	} else if (g->counter < COUNTER_MAX) {
		g->counter++; /* the same millisecond, or the clock stepped back: stay after the last id */
	} else {
		g->last_ms++;
		g->counter = 0;
	}
	ms = g->last_ms & 0xffffffffffffu;
	for (int i = 0; i < 6; i++)
		b[i] = (uint8_t)(ms >> (40 - 8 * i));
	b[6] = (uint8_t)(0x70 | (g->counter >> 8));
	b[7] = (uint8_t)(g->counter & 0xff);
	memcpy(b + 8, random, 8);
	b[8] = (uint8_t)(0x80 | (b[8] & 0x3f));
	snprintf(out, UUID_TEXT_SIZE,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

void uuid_v7_generate(struct uuid_v7 *g, char out[UUID_TEXT_SIZE])
{
	struct timespec ts;
	uint8_t random[8] = {0};
	uint64_t now_ms;

	clock_gettime(CLOCK_REALTIME, &ts);
	now_ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
	/* getrandom never fails for 8 bytes once the pool is initialised; a failure leaves zeros, still unique by the counter. */
	(void)getrandom(random, sizeof(random), 0);
	uuid_v7_next(g, now_ms, random, out);
}
