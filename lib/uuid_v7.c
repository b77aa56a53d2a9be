/* uuid_v7: time-ordered ids (the layout and the ordering rules are in uuid_v7.h). */
#include "uuid_v7.h"

#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define COUNTER_MAX 0xfffu

void uuid_v7_next_bytes(struct uuid_v7 *g, uint64_t now_ms, const uint8_t random[8], uint8_t out[UUID_BYTES])
{
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
		out[i] = (uint8_t)(ms >> (40 - 8 * i));
	out[6] = (uint8_t)(0x70 | (g->counter >> 8));
	out[7] = (uint8_t)(g->counter & 0xff);
	memcpy(out + 8, random, 8);
	out[8] = (uint8_t)(0x80 | (out[8] & 0x3f));
}

void uuid_format(const uint8_t bytes[UUID_BYTES], char out[UUID_TEXT_SIZE])
{
	static const char hex[] = "0123456789abcdef";
	char *c = out;

	for (int i = 0; i < UUID_BYTES; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*c++ = '-';
		*c++ = hex[bytes[i] >> 4];
		*c++ = hex[bytes[i] & 0xf];
	}
	*c = '\0';
}

/* splitmix64: 64 well-mixed bits per step from a 64-bit state. */
static uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15u);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

void uuid_v7_generate_bytes(struct uuid_v7 *g, uint8_t out[UUID_BYTES])
{
	struct timespec ts;
	uint8_t random[8];
	uint64_t now_ms, bits;

	if (g->random_state == 0) {
		/* getrandom does not fail for 8 bytes once the pool is ready; the clock is the fallback. */
		if (getrandom(&g->random_state, sizeof(g->random_state), 0) != sizeof(g->random_state) ||
		    g->random_state == 0) {
			clock_gettime(CLOCK_REALTIME, &ts);
			g->random_state = ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)ts.tv_nsec ^ (uint64_t)getpid() << 48;
		}
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	now_ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
	bits = splitmix64(&g->random_state);
	for (int i = 0; i < 8; i++)
		random[i] = (uint8_t)(bits >> (8 * i));
	uuid_v7_next_bytes(g, now_ms, random, out);
}
