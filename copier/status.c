/*
 * volmig status: the session's state and progress, for people or (--json)
 * for scripts.  JSON keys named in DESIGN.md are a contract: add keys,
 * never rename them.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "log.h"
#include "region.h"
#include "size.h"

static const char status_help[] =
	"usage: volmig status -s DIR [--json]\n\n"
	"Show the session's state, each pair's progress and the counters.  Safe to\n"
	"run while volmig sync runs.\n\n"
	"  -s, --state DIR   state directory (default $VOLMIG_STATE)\n"
	"      --json        one JSON object: state, region_size, pairs (source,\n"
	"                    target, size, bytes_copied, dirty_regions, ...),\n"
	"                    bytes_copied, bytes_recopied, resumes, ...\n"
	"  -h, --help        show this help\n";

struct status_data {
	struct state_progress prog[SESS_MAX_PAIRS];
	uint64_t dirty[SESS_MAX_PAIRS];
	struct state_totals totals;
};

static int status_txn(struct state *st, DB_TXN *txn, void *arg)
{
	struct status_data *d = arg;
	struct sess s;
	int rc;

	rc = state_sess_get(st, txn, &s);
	if (rc < 0)
		return rc;
	for (uint32_t i = 0; i < s.npairs && rc == 0; i++) {
		rc = state_progress_get(st, txn, i, &d->prog[i]);
		if (rc == 0)
			rc = state_dirty_count(st, txn, i, &d->dirty[i]);
	}
	if (rc == 0)
		rc = state_totals_get(st, txn, &d->totals);
	sess_release(&s);
	return rc;
}

static void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

/* Bytes of pair i brought in sync so far: regions below the cursor. */
static uint64_t synced_bytes(const struct sess *s, uint32_t i, uint64_t cursor)
{
	uint64_t b = cursor << s->region_shift;

	return b > s->pairs[i].size ? s->pairs[i].size : b;
}

int cmd_status(int argc, char **argv)
{
	enum { OPT_JSON = 256 };
	static const struct option opts[] = {
		{ "state", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir_arg = NULL, *dir;
	struct status_data *d;
	uint64_t copied = 0, recopied = 0, size_total = 0, synced_total = 0;
	bool json = false;
	struct state st;
	struct sess s;
	int c, rc, copier;

	optind = 1;
	while ((c = getopt_long(argc, argv, "s:h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			dir_arg = optarg;
			break;
		case OPT_JSON:
			json = true;
			break;
		case 'h':
			cli_usage(true, status_help);
			return EXIT_OK;
		default:
			cli_usage(false, status_help);
			return EXIT_USAGE;
		}
	}
	dir = cli_state_dir(dir_arg);
	if (dir == NULL || optind != argc) {
		log_err(dir == NULL ? "no state directory: give -s DIR or set VOLMIG_STATE"
				    : "unexpected argument");
		cli_usage(false, status_help);
		return EXIT_USAGE;
	}
	if (session_open(dir, &st, &s) < 0)
		return EXIT_FAIL;
	d = calloc(1, sizeof(*d));
	if (d == NULL) {
		rc = -ENOMEM;
	} else {
		rc = state_txn(&st, status_txn, d);
	}
	state_close(&st);
	if (rc < 0) {
		report_errno("cannot read progress from", dir, rc);
		sess_release(&s);
		free(d);
		return EXIT_FAIL;
	}
	copier = session_lock_holder(dir);
	for (uint32_t i = 0; i < s.npairs; i++) {
		copied += d->prog[i].bytes_copied;
		recopied += d->prog[i].bytes_recopied;
		size_total += s.pairs[i].size;
		synced_total += synced_bytes(&s, i, d->prog[i].cursor);
	}

	if (json) {
		printf("{\"state\":\"%s\",\"session_id\":\"%016llx\",\"region_size\":%llu,",
		       sess_state_name(s.state), (unsigned long long)s.id,
		       (unsigned long long)(UINT64_C(1) << s.region_shift));
		if (copier > 0)
			printf("\"copier_pid\":%d,", copier);
		else
			printf("\"copier_pid\":null,");
		printf("\"durability\":\"%s\",\"pairs\":[",
		       (s.flags & SESS_DURABILITY_PROCESS) ? "process" : "sync");
		for (uint32_t i = 0; i < s.npairs; i++) {
			const struct sess_pair *p = &s.pairs[i];

			printf("%s{\"source\":", i ? "," : "");
			json_string(stdout, p->source);
			printf(",\"target\":");
			json_string(stdout, p->target);
			printf(",\"size\":%llu,\"bytes_copied\":%llu,\"bytes_recopied\":%llu,"
			       "\"dirty_regions\":%llu,\"regions\":%llu,\"cursor_regions\":%llu,"
			       "\"synced_bytes\":%llu}",
			       (unsigned long long)p->size,
			       (unsigned long long)d->prog[i].bytes_copied,
			       (unsigned long long)d->prog[i].bytes_recopied,
			       (unsigned long long)d->dirty[i],
			       (unsigned long long)region_count(p->size, s.region_shift),
			       (unsigned long long)d->prog[i].cursor,
			       (unsigned long long)synced_bytes(&s, i, d->prog[i].cursor));
		}
		printf("],\"bytes_copied\":%llu,\"bytes_recopied\":%llu,\"resumes\":%llu,"
		       "\"size\":%llu,\"synced_bytes\":%llu}\n",
		       (unsigned long long)copied, (unsigned long long)recopied,
		       (unsigned long long)d->totals.resumes, (unsigned long long)size_total,
		       (unsigned long long)synced_total);
	} else {
		char a[32], b[32], rs[32];

		printf("session     %016llx in %s\n", (unsigned long long)s.id, dir);
		printf("state       %s", sess_state_name(s.state));
		if (copier > 0)
			printf(" (copier running, pid %d)", copier);
		printf("\nregion size %s\n", size_format(UINT64_C(1) << s.region_shift, rs, sizeof(rs)));
		for (uint32_t i = 0; i < s.npairs; i++) {
			const struct sess_pair *p = &s.pairs[i];
			uint64_t sb = synced_bytes(&s, i, d->prog[i].cursor);

			printf("pair %u      %s -> %s\n", i, p->source, p->target);
			printf("            %s of %s copied (%.1f%%), %llu dirty region%s\n",
			       size_format(sb, a, sizeof(a)), size_format(p->size, b, sizeof(b)),
			       p->size ? 100.0 * (double)sb / (double)p->size : 100.0,
			       (unsigned long long)d->dirty[i], d->dirty[i] == 1 ? "" : "s");
		}
		printf("copied      %s written to targets, %s of it again after resumes\n",
		       size_format(copied, a, sizeof(a)), size_format(recopied, b, sizeof(b)));
		printf("resumes     %llu\n", (unsigned long long)d->totals.resumes);
	}
	sess_release(&s);
	free(d);
	return EXIT_OK;
}
