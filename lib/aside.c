#include "aside.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "payload.h"
#include "strbuf.h"

struct aside {
	pthread_mutex_t lock;
	uuid_text ids[ASIDE_MAX];
	int n;
};

struct aside *aside_create(void)
{
	struct aside *set = calloc(1, sizeof(*set));

	if (set)
		pthread_mutex_init(&set->lock, NULL);
	return set;
}

void aside_destroy(struct aside *set)
{
	if (!set)
		return;
	pthread_mutex_destroy(&set->lock);
	free(set);
}

/* Under the lock. */
static bool contains_locked(const struct aside *set, const char *entry_id)
{
	for (int i = 0; i < set->n; i++)
		if (strcmp(set->ids[i], entry_id) == 0)
			return true;
	return false;
}

enum aside_add aside_add(struct aside *set, const char *entry_id)
{
	enum aside_add result = ASIDE_ADDED;

	pthread_mutex_lock(&set->lock);
	if (contains_locked(set, entry_id))
		result = ASIDE_PRESENT;
	else if (set->n == ASIDE_MAX || strlen(entry_id) > UUID_TEXT_LEN)
		result = ASIDE_FULL;
	else
		memcpy(set->ids[set->n++], entry_id, strlen(entry_id) + 1);
	pthread_mutex_unlock(&set->lock);
	return result;
}

bool aside_contains(struct aside *set, const char *entry_id)
{
	bool found;

	pthread_mutex_lock(&set->lock);
	found = contains_locked(set, entry_id);
	pthread_mutex_unlock(&set->lock);
	return found;
}

int aside_count(struct aside *set)
{
	int n;

	pthread_mutex_lock(&set->lock);
	n = set->n;
	pthread_mutex_unlock(&set->lock);
	return n;
}

char *aside_literal(struct aside *set)
{
	const char *ids[ASIDE_MAX];
	char *literal;

	pthread_mutex_lock(&set->lock);
	for (int i = 0; i < set->n; i++)
		ids[i] = set->ids[i];
	literal = uuid_array_literal(ids, set->n);
	pthread_mutex_unlock(&set->lock);
	return literal;
}
