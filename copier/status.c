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
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "ctl.h"
#include "ingest.h"
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
	struct state_control control;
	uint64_t mirror_errors[SESS_MAX_PAIRS]; /* the larger of durable and the block's */
	bool live;                              /* the control block is there */
	/* the dirty log's records no copier has read yet (status_logged) */
	struct ingest in;
	bool log_ok;
	struct region_map dset[SESS_MAX_PAIRS]; /* the durable dirty set, when needed */
	uint64_t logged[SESS_MAX_PAIRS];
};

/* Live figures only the control block has. */
static void status_live(const char *dir, const struct sess *s, struct status_data *d)
{
	char path[4200];
	struct ctl c;

	if (ctl_path(dir, path, sizeof(path)) < 0 || ctl_attach(&c, path) < 0)
		return;
	if (c.hdr->session_id == s->id) {
		d->live = true;
		for (uint32_t i = 0; i < s->npairs; i++) {
			/* the block counts from what was recorded when it was built */
			uint64_t n = atomic_load_explicit(&c.hdr->mirror_errors[i],
							  memory_order_relaxed);

			if (n > d->mirror_errors[i])
				d->mirror_errors[i] = n;
		}
	}
	ctl_detach(&c);
}

static const char *recovery_name(uint32_t r)
{
	return r == STATE_RECOVERY_ROLLED_BACK ? "rolled back"
	       : r == STATE_RECOVERY_FINISHED  ? "finished"
					       : "none";
}

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
		if (rc == 0 && d->dset[i].nbits > 0) {
			region_map_clear_range(&d->dset[i], 0, d->dset[i].nbits);
			rc = state_dirty_load(st, txn, i, &d->dset[i], NULL);
		}
		if (rc == 0)
			rc = state_mirror_errors_get(st, txn, i, &d->mirror_errors[i]);
	}
	if (rc == 0)
		rc = state_totals_get(st, txn, &d->totals);
	if (rc == 0)
		rc = state_control_get(st, txn, &d->control);
	sess_release(&s);
	return rc;
}

/*
 * The dirty log's records no copier has read yet: a copier reads them at
 * its checkpoints, so they wait for one.  Read before the durable state (a
 * checkpoint in between moves records into the dirty set, as for verify);
 * the pairs they name get their dirty set loaded.  A log that cannot be
 * read leaves log_ok false (status says so; sync names the fault).
 */
static void status_log_read(const char *dir, struct state *st, const struct sess *s,
			    struct status_data *d)
{
	ingest_reader(&d->in, dir, s, true);
	d->log_ok = ingest_collect(&d->in, st) == 0;
	for (size_t k = 0; d->log_ok && k < d->in.nrecs; k++) {
		uint32_t i = d->in.recs[k].pair;

		if (d->dset[i].nbits == 0 && region_map_init(&d->dset[i], d->in.nregions[i]) < 0)
			d->log_ok = false;
	}
}

/* After the durable state is read: per pair, the regions below its cursor
 * that the records name, outside the dirty set (written since their copy,
 * to be copied again). */
static void status_logged(const struct sess *s, struct status_data *d)
{
	for (uint32_t i = 0; d->log_ok && i < s->npairs; i++) {
		struct region_map m;

		if (d->dset[i].nbits == 0)
			continue;
		if (region_map_init(&m, d->dset[i].nbits) < 0) {
			d->log_ok = false;
			break;
		}
		for (size_t k = 0; k < d->in.nrecs; k++) {
			const struct ingest_rec *rec = &d->in.recs[k];

			for (uint64_t r = rec->first; rec->pair == i && r < rec->first + rec->count &&
						      r < d->prog[i].cursor;
			     r++)
				if (!region_map_test(&d->dset[i], r))
					region_map_set(&m, r);
		}
		d->logged[i] = m.count;
		region_map_release(&m);
	}
}

static void status_free(struct status_data *d)
{
	if (d == NULL)
		return;
	for (uint32_t i = 0; i < SESS_MAX_PAIRS; i++)
		region_map_release(&d->dset[i]);
	ingest_release(&d->in);
	free(d);
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

/* A pair's source size now: a file's may have changed since setup (its
 * size at setup when the path names another file now). */
static uint64_t source_size(const struct sess_pair *p, bool changed)
{
	struct stat sb;

	if (!changed && p->source_id.kind == SESS_KIND_FILE && stat(p->source, &sb) == 0 &&
	    S_ISREG(sb.st_mode))
		return (uint64_t)sb.st_size;
	return p->size;
}

/* The status line of a volume replaced, removed or resized (role: source
 * or target), if it is. */
static void changed_line(const char *role, enum vol_change ch, uint64_t now, uint64_t was)
{
	char a[32], b[32];

	if (ch == VOL_GONE)
		printf("            CHANGED: the %s path no longer names the volume it did at "
		       "setup (replaced or removed): nothing is copied or committed until it "
		       "does again (else volmig abort)\n", role);
	else if (ch == VOL_RESIZED)
		printf("            CHANGED: the %s is %s, %s at setup: nothing is copied or "
		       "committed until it has that size again (else volmig abort)\n", role,
		       size_format(now, a, sizeof(a)), size_format(was, b, sizeof(b)));
}

/* Bytes of a pair of size bytes brought in sync so far: regions below the
 * cursor. */
static uint64_t synced_bytes(const struct sess *s, uint64_t cursor, uint64_t size)
{
	uint64_t b = cursor << s->region_shift;

	return b > size ? size : b;
}

/* The stop of the migration, as a message (buf), or NULL. */
static const char *stop_text(const struct sess *s, const struct state_control *k, char *buf,
			     size_t len)
{
	const struct sess_pair *p;

	if (k->stopped == 0 || k->stopped > s->npairs)
		return NULL;
	p = &s->pairs[k->stopped - 1];
	snprintf(buf, len, "source %s grew to %llu bytes, past the %llu bytes the session "
		 "tracks (%llu at setup + %llu reserved)", p->source,
		 (unsigned long long)k->stopped_size, (unsigned long long)sess_capacity(p),
		 (unsigned long long)p->size, (unsigned long long)p->reserve);
	return buf;
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
	uint64_t sizes[SESS_MAX_PAIRS];
	enum vol_change src_ch[SESS_MAX_PAIRS], tgt_ch[SESS_MAX_PAIRS];
	uint64_t src_now[SESS_MAX_PAIRS], tgt_now[SESS_MAX_PAIRS];
	char stopbuf[4096 + 256];
	const char *stop;
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
		status_log_read(dir, &st, &s, d);
		rc = state_txn(&st, status_txn, d);
	}
	state_close(&st);
	if (rc < 0) {
		report_errno("cannot read progress from", dir, rc);
		sess_release(&s);
		status_free(d);
		return EXIT_FAIL;
	}
	status_logged(&s, d);
	status_live(dir, &s, d);
	copier = session_lock_holder(dir);
	for (uint32_t i = 0; i < s.npairs; i++) {
		/* a volume replaced, removed or resized while the migration goes
		 * on (once it is over, the old volumes may go) */
		const struct sess_pair *p = &s.pairs[i];
		bool live = s.state != SESS_COMMITTED && s.state != SESS_ABORTED;

		src_ch[i] = tgt_ch[i] = VOL_SAME;
		src_now[i] = tgt_now[i] = 0;
		if (live) {
			src_ch[i] = session_volume_changed(p->source, &p->source_id, p->size,
							   &src_now[i]);
			tgt_ch[i] = session_volume_changed(p->target, &p->target_id,
							   p->target_size, &tgt_now[i]);
		}
		copied += d->prog[i].bytes_copied;
		recopied += d->prog[i].bytes_recopied;
		sizes[i] = source_size(p, src_ch[i] == VOL_GONE);
		size_total += sizes[i];
		synced_total += synced_bytes(&s, d->prog[i].cursor, sizes[i]);
	}
	stop = stop_text(&s, &d->control, stopbuf, sizeof(stopbuf));

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
			printf(",\"size\":%llu,\"size_at_setup\":%llu,\"reserve\":%llu,"
			       "\"bytes_copied\":%llu,\"bytes_recopied\":%llu,"
			       "\"dirty_regions\":%llu,\"regions\":%llu,\"cursor_regions\":%llu,"
			       "\"synced_bytes\":%llu,\"mirror_errors\":%llu,",
			       (unsigned long long)sizes[i], (unsigned long long)p->size,
			       (unsigned long long)p->reserve,
			       (unsigned long long)d->prog[i].bytes_copied,
			       (unsigned long long)d->prog[i].bytes_recopied,
			       (unsigned long long)d->dirty[i],
			       (unsigned long long)region_count(sess_capacity(p), s.region_shift),
			       (unsigned long long)d->prog[i].cursor,
			       (unsigned long long)synced_bytes(&s, d->prog[i].cursor, sizes[i]),
			       (unsigned long long)d->mirror_errors[i]);
			if (d->log_ok)
				printf("\"dirty_log_regions\":%llu,", (unsigned long long)d->logged[i]);
			else
				printf("\"dirty_log_regions\":null,");
			printf("\"tracking_lost\":%s,\"source_changed\":%s,\"target_changed\":%s}",
			       d->log_ok && (d->in.lost_new & (UINT64_C(1) << i)) ? "true" : "false",
			       src_ch[i] != VOL_SAME ? "true" : "false",
			       tgt_ch[i] != VOL_SAME ? "true" : "false");
		}
		printf("],\"bytes_copied\":%llu,\"bytes_recopied\":%llu,\"resumes\":%llu,"
		       "\"size\":%llu,\"synced_bytes\":%llu,\"paused\":%s,\"rate_limit\":%llu,"
		       "\"transition_pending\":%s%s%s,\"stopped\":",
		       (unsigned long long)copied, (unsigned long long)recopied,
		       (unsigned long long)d->totals.resumes, (unsigned long long)size_total,
		       (unsigned long long)synced_total, d->control.paused ? "true" : "false",
		       (unsigned long long)(d->control.rate == UINT64_MAX ? 0 : d->control.rate),
		       d->control.pending ? "\"" : "",
		       d->control.pending ? sess_state_name(d->control.pending) : "null",
		       d->control.pending ? "\"" : "");
		if (stop != NULL)
			json_string(stdout, stop);
		else
			printf("null");
		printf(",\"last_recovery\":");
		if (d->control.recovered)
			printf("{\"transition\":\"%s\",\"outcome\":\"%s\",\"at\":%llu}}\n",
			       sess_state_name(d->control.recovered_state),
			       recovery_name(d->control.recovered),
			       (unsigned long long)d->control.recovered_at);
		else
			printf("null}\n");
	} else {
		char a[32], b[32], rs[32];

		printf("session     %016llx in %s\n", (unsigned long long)s.id, dir);
		printf("state       %s", sess_state_name(s.state));
		if (copier > 0)
			printf(" (copier running, pid %d)", copier);
		printf("\nregion size %s\n", size_format(UINT64_C(1) << s.region_shift, rs, sizeof(rs)));
		for (uint32_t i = 0; i < s.npairs; i++) {
			const struct sess_pair *p = &s.pairs[i];
			uint64_t sb = synced_bytes(&s, d->prog[i].cursor, sizes[i]);

			printf("pair %u      %s -> %s\n", i, p->source, p->target);
			printf("            %s of %s copied (%.1f%%), %llu dirty region%s\n",
			       size_format(sb, a, sizeof(a)), size_format(sizes[i], b, sizeof(b)),
			       sizes[i] ? 100.0 * (double)sb / (double)sizes[i] : 100.0,
			       (unsigned long long)d->dirty[i], d->dirty[i] == 1 ? "" : "s");
			if (d->logged[i])
				printf("            %llu more written since their copy, in the dirty "
				       "log (the next copier reads it)\n",
				       (unsigned long long)d->logged[i]);
			if (d->log_ok && (d->in.lost_new & (UINT64_C(1) << i)))
				printf("            tracking lost (a program could not log a "
				       "write): the next copier copies it all again\n");
			changed_line("source", src_ch[i], src_now[i], p->size);
			changed_line("target", tgt_ch[i], tgt_now[i], p->target_size);
			if (p->reserve)
				printf("            room to grow: %s past its %s at setup\n",
				       size_format(p->reserve, a, sizeof(a)),
				       size_format(p->size, b, sizeof(b)));
		}
		printf("copied      %s written to targets, %s of it again after resumes\n",
		       size_format(copied, a, sizeof(a)), size_format(recopied, b, sizeof(b)));
		printf("resumes     %llu\n", (unsigned long long)d->totals.resumes);
		if (!d->log_ok)
			printf("dirty log   cannot be read (volmig sync names the fault)\n");
		for (uint32_t i = 0; i < s.npairs; i++)
			if (d->mirror_errors[i])
				printf("mirroring   pair %u: %llu target writes failed (those regions "
				       "stay dirty; the copier copies them again)\n", i,
				       (unsigned long long)d->mirror_errors[i]);
		if (stop != NULL)
			printf("STOPPED     %s: the migration cannot finish; volmig abort, then "
			       "set up again with a larger --reserve\n", stop);
		if (d->control.paused)
			printf("copying     paused (volmig resume goes on)\n");
		if (d->control.rate && d->control.rate != UINT64_MAX)
			printf("throttle    %s/s\n", size_format(d->control.rate, rs, sizeof(rs)));
		if (d->control.pending)
			printf("transition  to %s in progress (pid %d)\n",
			       sess_state_name(d->control.pending), (int)d->control.pending_pid);
		if (d->control.recovered) {
			time_t at = (time_t)d->control.recovered_at;
			char when[64];

			strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime(&at));
			printf("recovery    a %s cut off by a crash was %s (%s)\n",
			       sess_state_name(d->control.recovered_state),
			       recovery_name(d->control.recovered), when);
		}
	}
	sess_release(&s);
	status_free(d);
	return EXIT_OK;
}
