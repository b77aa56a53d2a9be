/* inspect_text: `passportd inspect` for a terminal, printed from the same object --json prints. */
#include <stdio.h>
#include <string.h>

#include "inspect.h"
#include "vec.h"

static const char *text_of(const cJSON *object, const char *key, const char *fallback)
{
	const char *text = cJSON_GetStringValue(cJSON_GetObjectItem(object, key));
	return text ? text : fallback;
}

static double number_of(const cJSON *object, const char *key)
{
	const cJSON *item = cJSON_GetObjectItem(object, key);
	return cJSON_IsNumber(item) ? item->valuedouble : 0.0;
}

/* "cultural 0.41  behavioral 0  ..." of a {"cultural": ...} object; null prints as "nan". */
static void print_domains(FILE *out, const cJSON *domains)
{
	for (int d = 0; d < VEC_DOMAINS; d++) {
		const cJSON *value = cJSON_GetObjectItem(domains, vec_domain_names[d]);

		if (cJSON_IsNumber(value))
			fprintf(out, "%s%s %.4g", d ? "  " : "", vec_domain_names[d], value->valuedouble);
		else
			fprintf(out, "%s%s nan", d ? "  " : "", vec_domain_names[d]);
	}
}

static void print_matches(const cJSON *report, FILE *out)
{
	const cJSON *match;

	cJSON_ArrayForEach(match, cJSON_GetObjectItem(report, "matches"))
	{
		fprintf(out, "  %s  %s  (%s)\n", text_of(match, "user_id", "?"), text_of(match, "email", "no email"),
			text_of(match, "source", "?"));
	}
}

static void print_steps(const cJSON *row, FILE *out)
{
	const cJSON *steps = cJSON_GetObjectItem(row, "evolution"), *step;

	if (cJSON_GetArraySize(steps) == 0) {
		fprintf(out, "      no evolution steps\n");
		return;
	}
	fprintf(out, "      latest %d steps (change, then decay per domain):\n", cJSON_GetArraySize(steps));
	cJSON_ArrayForEach(step, steps)
	{
		fprintf(out, "        %s  %s%s  alpha %.4g", text_of(step, "event_time", "?"), text_of(step, "event_type", "?"),
			cJSON_IsTrue(cJSON_GetObjectItem(step, "late")) ? "  LATE" : "", number_of(step, "alpha"));
		if (cJSON_GetStringValue(cJSON_GetObjectItem(step, "target_type")))
			fprintf(out, "  target %s %s", text_of(step, "target_type", ""), text_of(step, "target_id", ""));
		fprintf(out, "\n          change  ");
		print_domains(out, cJSON_GetObjectItem(step, "change"));
		fprintf(out, "\n          decay   ");
		print_domains(out, cJSON_GetObjectItem(step, "decay"));
		fprintf(out, "\n");
	}
}

static void print_dna_rows(const cJSON *report, FILE *out)
{
	const cJSON *rows = cJSON_GetObjectItem(report, "media_ids"), *row;

	fprintf(out, "\nDNA rows (media_ids): %d%s\n", cJSON_GetArraySize(rows),
		cJSON_IsFalse(cJSON_GetObjectItem(report, "media_ids_complete")) ? " (more not shown)" : "");
	cJSON_ArrayForEach(row, rows)
	{
		const cJSON *dna = cJSON_GetObjectItem(row, "dna"), *drift = cJSON_GetObjectItem(row, "drift");
		const cJSON *active = cJSON_GetObjectItem(row, "is_active");
		const char *state = text_of(dna, "state", "?");

		fprintf(out, "  %-8s %s  version %.0f%s\n", text_of(row, "role", "?"), text_of(row, "id", "?"),
			number_of(row, "version"), cJSON_IsFalse(active) ? "  inactive" : "");
		fprintf(out, "      dna_clock %s  updated_at %s\n", text_of(row, "dna_clock", "none"),
			text_of(row, "updated_at", "none"));
		if (strcmp(state, "ok") == 0) {
			fprintf(out, "      DNA norms: ");
			print_domains(out, cJSON_GetObjectItem(dna, "norms"));
			fprintf(out, "\n");
		} else if (strcmp(state, "null") == 0) {
			fprintf(out, "      DNA: NULL (no embedding yet; the first entry starts it from zero)\n");
		} else {
			fprintf(out, "      DNA: INVALID: %s\n", text_of(dna, "reason", "?"));
		}
		fprintf(out, "      drift since %s: %.0f steps (%.0f late)%s: ", text_of(report, "since", "?"),
			number_of(drift, "steps"), number_of(drift, "late_steps"),
			cJSON_IsFalse(cJSON_GetObjectItem(drift, "complete")) ? " (only the latest counted)" : "");
		print_domains(out, cJSON_GetObjectItem(drift, "change"));
		fprintf(out, "\n");
		print_steps(row, out);
	}
}

static void print_entries(const cJSON *report, FILE *out)
{
	const cJSON *entries = cJSON_GetObjectItem(report, "entries"), *entry;
	const cJSON *counts = cJSON_GetObjectItem(entries, "counts");
	const cJSON *latest = cJSON_GetObjectItem(entries, "latest");

	fprintf(out, "\nentries: %.0f due, %.0f retrying, %.0f dead, %.0f processed, %.0f in all%s\n",
		number_of(counts, "due"), number_of(counts, "retrying"), number_of(counts, "dead"),
		number_of(counts, "processed"), number_of(counts, "total"),
		cJSON_IsFalse(cJSON_GetObjectItem(entries, "counts_complete")) ? " (counting stopped there)" : "");
	if (cJSON_GetArraySize(latest))
		fprintf(out, "latest %d entries:\n", cJSON_GetArraySize(latest));
	cJSON_ArrayForEach(entry, latest)
	{
		const cJSON *system;
		int n = 0;

		fprintf(out, "  %s  %-9s %2.0f attempts  %s  [", text_of(entry, "timestamp", "no timestamp"),
			text_of(entry, "state", "?"), number_of(entry, "attempts"), text_of(entry, "event_type", "?"));
		cJSON_ArrayForEach(system, cJSON_GetObjectItem(entry, "systems"))
		{
			fprintf(out, "%s%s", n++ ? "," : "", cJSON_IsString(system) ? system->valuestring : "?");
		}
		fprintf(out, "]  %s\n", text_of(entry, "id", "?"));
		if (cJSON_GetStringValue(cJSON_GetObjectItem(entry, "last_error")))
			fprintf(out, "      last error: %s\n", text_of(entry, "last_error", ""));
	}
}

void inspect_print_text(const cJSON *report, FILE *out)
{
	const cJSON *plot = cJSON_GetObjectItem(report, "plot");
	const char *user_id = cJSON_GetStringValue(cJSON_GetObjectItem(report, "user_id"));
	char input[80];

	inspect_printable(text_of(report, "input", ""), input, sizeof(input));
	if (!user_id) {
		int n = cJSON_GetArraySize(cJSON_GetObjectItem(report, "matches"));
		if (n == 0) {
			fprintf(out, "no user has the email '%s'\n", input);
		} else {
			fprintf(out, "several users match '%s'; inspect one of them by its id:\n", input);
			print_matches(report, out);
		}
		return;
	}
	fprintf(out, "user %s\n", user_id);
	print_matches(report, out);
	fprintf(out, "as of %s; DNA column %s\n", text_of(report, "generated_at", "?"), text_of(report, "vector_type", "?"));
	print_dna_rows(report, out);
	print_entries(report, out);
	if (cJSON_IsObject(plot)) {
		fprintf(out, "\nplot: %s (%s, %.0fx%.0f): %.0f steps of DNA row %s, %.0f late%s\n", text_of(plot, "file", "?"),
			text_of(plot, "format", "?"), number_of(plot, "width"), number_of(plot, "height"),
			number_of(plot, "points"), text_of(plot, "media_id", "?"), number_of(plot, "late_points"),
			cJSON_IsFalse(cJSON_GetObjectItem(plot, "complete")) ? " (the latest only)" : "");
	}
}
