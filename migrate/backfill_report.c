/* backfill_report: what a backfill found and did, per source and in total: the unmapped types and the summary. */
#include "backfill.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const status_names[] = {
	[SOURCE_PENDING] = "pending",
	[SOURCE_RUNNING] = "running",
	[SOURCE_COMPLETE] = "complete",
	[SOURCE_MISSING] = "missing",
	[SOURCE_INTERRUPTED] = "interrupted",
	[SOURCE_FAILED] = "failed",
};

void backfill_add_unmapped(struct source_run *run, const char *legacy_type, const char *event_type, long long count)
{
	run->unmapped_total += count;
	for (size_t i = 0; i < run->unmapped_count; i++) {
		if (strcmp(run->unmapped[i].legacy_type, legacy_type) == 0) {
			run->unmapped[i].count += count;
			return;
		}
	}
	if (run->unmapped_count >= BACKFILL_MAX_UNMAPPED_TYPES) {
		run->unmapped_other += count;
		return;
	}
	{
		struct unmapped_type *grown =
			realloc(run->unmapped, (run->unmapped_count + 1) * sizeof *run->unmapped);
		char *legacy_copy = strdup(legacy_type);
		char *event_copy = strdup(event_type);

		if (!grown || !legacy_copy || !event_copy) {
			if (grown)
				run->unmapped = grown;
			free(legacy_copy);
			free(event_copy);
			run->unmapped_other += count;
			return;
		}
		run->unmapped = grown;
		run->unmapped[run->unmapped_count++] =
			(struct unmapped_type){.legacy_type = legacy_copy, .event_type = event_copy, .count = count};
	}
}

static int compare_unmapped(const void *a, const void *b)
{
	const struct unmapped_type *x = a, *y = b;

	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	return strcmp(x->legacy_type, y->legacy_type);
}

void backfill_sort_unmapped(struct source_run *run)
{
	if (run->unmapped_count > 1)
		qsort(run->unmapped, run->unmapped_count, sizeof *run->unmapped, compare_unmapped);
}

static double rows_per_second(long long rows, double seconds)
{
	return seconds > 0 ? (double)rows / seconds : 0;
}

void backfill_print_summary_text(const struct source_run *runs, size_t count, const struct backfill_options *options,
				 double elapsed)
{
	long long inserted = 0, present = 0, anonymous = 0, unmapped = 0, read = 0, scanned = 0;
	char a[32], b[32], c[32], d[32], e[32], f[32];

	if (options->dry_run)
		printf("backfill: dry run, nothing written\n");
	else if (options->mark_processed)
		printf("backfill: entries inserted as processed history (passportd will not apply them)\n");
	else
		printf("backfill: entries inserted unprocessed (passportd replays them in event-time order)\n");
	for (size_t i = 0; i < count; i++) {
		const struct source_run *run = &runs[i];
		const char *name = legacy_source_name(run->source);

		if (run->status == SOURCE_MISSING) {
			printf("  %s: table not found, skipped\n", name);
			continue;
		}
		if (run->status == SOURCE_FAILED && !run->table.exists) {
			printf("  %s: failed: %s\n", name, run->error);
			continue;
		}
		if (run->status == SOURCE_INTERRUPTED && !run->table.exists) {
			printf("  %s: not started (interrupted)\n", name);
			continue;
		}
		scanned += run->rows_scanned;
		read += run->rows_read;
		inserted += run->written;
		present += run->rows_read - run->written;
		anonymous += run->anonymous;
		unmapped += run->unmapped_total;
		printf("  %s (%s layout): %s\n", name, legacy_table_layout_name(&run->table), status_names[run->status]);
		if (run->resumed_slices > 0) {
			char resumed[512];

			backfill_describe_resume(run, resumed, sizeof resumed);
			printf("    resumed %s (%s rows read by the interrupted run)\n", resumed,
			       format_count(run->resumed_rows, a, sizeof a));
		}
		if (run->rows_scanned != run->rows_read)
			printf("    rows read        %s in the window (of %s scanned)\n", format_count(run->rows_read, a, sizeof a),
			       format_count(run->rows_scanned, b, sizeof b));
		else
			printf("    rows read        %s\n", format_count(run->rows_read, a, sizeof a));
		printf("    %s    %s\n", options->dry_run ? "would insert " : "inserted     ",
		       format_count(run->written, a, sizeof a));
		printf("    already present  %s\n", format_count(run->rows_read - run->written, a, sizeof a));
		printf("    anonymous        %s\n", format_count(run->anonymous, a, sizeof a));
		if (run->unknown_users)
			printf("    unknown users    %s (kept as anonymous, payload.legacy_user_id)\n",
			       format_count(run->unknown_users, a, sizeof a));
		printf("    unmapped types   %s", run->unmapped_count ? "" : "none");
		for (size_t u = 0; u < run->unmapped_count; u++)
			printf("%s%s -> %s (%s)", u ? ", " : "", run->unmapped[u].legacy_type[0] ? run->unmapped[u].legacy_type : "(null)",
			       run->unmapped[u].event_type, format_count(run->unmapped[u].count, a, sizeof a));
		if (run->unmapped_other)
			printf(", other types (%s)", format_count(run->unmapped_other, a, sizeof a));
		printf("\n    elapsed          %.1f s, %s rows/s\n", run->elapsed,
		       format_count((long long)(rows_per_second(run->rows_scanned, run->elapsed) + 0.5), a, sizeof a));
		if (run->sample && cJSON_GetArraySize(run->sample) > 0) {
			cJSON *item;

			printf("    sample (the first rows as they would be inserted):\n");
			cJSON_ArrayForEach(item, run->sample)
			{
				char *text = cJSON_PrintUnformatted(item);
				if (text)
					printf("      %s\n", text);
				free(text);
			}
		}
		if (run->error[0])
			printf("    error            %s\n", run->error);
		if (run->status == SOURCE_INTERRUPTED)
			printf("    interrupted: run the same command again to resume\n");
	}
	printf("  total: %s rows read, %s %s, %s already present, %s anonymous, %s unmapped, %.1f s, %s rows/s\n",
	       format_count(read, a, sizeof a), format_count(inserted, b, sizeof b),
	       options->dry_run ? "would be inserted" : "inserted", format_count(present, c, sizeof c),
	       format_count(anonymous, d, sizeof d), format_count(unmapped, e, sizeof e), elapsed,
	       format_count((long long)(rows_per_second(scanned, elapsed) + 0.5), f, sizeof f));
}

void backfill_print_summary_json(const struct source_run *runs, size_t count, const struct backfill_options *options,
				 const char *since, const char *until, double elapsed, const char *status)
{
	cJSON *root = cJSON_CreateObject(), *sources;
	long long inserted = 0, present = 0, anonymous = 0, unmapped = 0, read = 0, unknown = 0, scanned = 0;
	char *text;

	if (!root) {
		migrate_error("backfill: out of memory");
		return;
	}
	cJSON_AddStringToObject(root, "command", "backfill");
	cJSON_AddStringToObject(root, "status", status);
	cJSON_AddBoolToObject(root, "dry_run", options->dry_run);
	cJSON_AddBoolToObject(root, "mark_processed", options->mark_processed);
	cJSON_AddNumberToObject(root, "batch_size", options->batch_size);
	if (since && *since)
		cJSON_AddStringToObject(root, "since", since);
	else
		cJSON_AddNullToObject(root, "since");
	if (until && *until)
		cJSON_AddStringToObject(root, "until", until);
	else
		cJSON_AddNullToObject(root, "until");
	sources = cJSON_AddArrayToObject(root, "sources");
	for (size_t i = 0; i < count; i++) {
		const struct source_run *run = &runs[i];
		cJSON *item = cJSON_CreateObject(), *types;

		if (!item)
			continue;
		cJSON_AddItemToArray(sources, item);
		cJSON_AddStringToObject(item, "source", legacy_source_name(run->source));
		cJSON_AddStringToObject(item, "status", status_names[run->status]);
		cJSON_AddStringToObject(item, "layout", legacy_table_layout_name(&run->table));
		if (run->resumed_after[0])
			cJSON_AddStringToObject(item, "resumed_after", run->resumed_after);
		else
			cJSON_AddNullToObject(item, "resumed_after");
		cJSON_AddNumberToObject(item, "slices", run->slice_count);
		cJSON_AddNumberToObject(item, "resumed_slices", run->resumed_slices);
		cJSON_AddNumberToObject(item, "rows_scanned", (double)run->rows_scanned);
		cJSON_AddNumberToObject(item, "rows_read", (double)run->rows_read);
		cJSON_AddNumberToObject(item, "inserted", options->dry_run ? 0 : (double)run->written);
		if (options->dry_run)
			cJSON_AddNumberToObject(item, "would_insert", (double)run->written);
		cJSON_AddNumberToObject(item, "already_present", (double)(run->rows_read - run->written));
		cJSON_AddNumberToObject(item, "anonymous", (double)run->anonymous);
		cJSON_AddNumberToObject(item, "unknown_users", (double)run->unknown_users);
		types = cJSON_AddArrayToObject(item, "unmapped");
		for (size_t u = 0; u < run->unmapped_count; u++) {
			cJSON *type = cJSON_CreateObject();
			if (!type)
				continue;
			cJSON_AddItemToArray(types, type);
			cJSON_AddStringToObject(type, "legacy_event_type", run->unmapped[u].legacy_type);
			cJSON_AddStringToObject(type, "event_type", run->unmapped[u].event_type);
			cJSON_AddNumberToObject(type, "count", (double)run->unmapped[u].count);
		}
		cJSON_AddNumberToObject(item, "unmapped_other", (double)run->unmapped_other);
		cJSON_AddNumberToObject(item, "elapsed_seconds", run->elapsed);
		cJSON_AddNumberToObject(item, "rows_per_second", rows_per_second(run->rows_scanned, run->elapsed));
		if (run->error[0])
			cJSON_AddStringToObject(item, "error", run->error);
		else
			cJSON_AddNullToObject(item, "error");
		if (run->sample)
			cJSON_AddItemReferenceToObject(item, "sample", run->sample);
		scanned += run->rows_scanned;
		read += run->rows_read;
		inserted += run->written;
		present += run->rows_read - run->written;
		anonymous += run->anonymous;
		unknown += run->unknown_users;
		unmapped += run->unmapped_total;
	}
	cJSON_AddNumberToObject(root, "rows_scanned", (double)scanned);
	cJSON_AddNumberToObject(root, "rows_read", (double)read);
	cJSON_AddNumberToObject(root, "inserted", options->dry_run ? 0 : (double)inserted);
	if (options->dry_run)
		cJSON_AddNumberToObject(root, "would_insert", (double)inserted);
	cJSON_AddNumberToObject(root, "already_present", (double)present);
	cJSON_AddNumberToObject(root, "anonymous", (double)anonymous);
	cJSON_AddNumberToObject(root, "unknown_users", (double)unknown);
	cJSON_AddNumberToObject(root, "unmapped", (double)unmapped);
	cJSON_AddNumberToObject(root, "elapsed_seconds", elapsed);
	cJSON_AddNumberToObject(root, "rows_per_second", rows_per_second(scanned, elapsed));
	text = cJSON_PrintUnformatted(root);
	if (text)
		printf("%s\n", text);
	free(text);
	cJSON_Delete(root);
}
