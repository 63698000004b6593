/*
 * volmig verify: compare source and target over every region recorded clean
 * (below the cursor, not in the dirty set, and named by no dirty-log record
 * yet to be ingested); the whole volume once synced.
 *
 * A region written since its copy is not compared: its write's record is in
 * the dirty log before the write reaches the source (I2), and a checkpoint
 * moves it into the durable dirty set.  The log is read before the durable
 * state, so a checkpoint between the two reads cannot hide a record.  A
 * region that differs is looked at again with both read anew (a write may
 * have come after the first read), and reported only if it is still
 * recorded clean and still differs.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "crash.h"
#include "ingest.h"
#include "io.h"
#include "log.h"
#include "region.h"
#include "size.h"

static const char verify_help[] =
	"usage: volmig verify -s DIR [--progress-interval SECONDS]\n\n"
	"Read every region the session records as copied, from the source and from\n"
	"the target, and compare them byte for byte.  Once the session is synced\n"
	"that is the whole volume.  Exit status 0 when all compared regions are\n"
	"identical, 1 at the first difference (named by pair and offset) or error.\n"
	"Regions written since their copy (in the dirty set or the dirty log) are not\n"
	"compared, so programs may go on writing while it runs.  A committed or\n"
	"aborted session is refused (exit 1): only one of its volumes is kept up to\n"
	"date.  So is a source or target that is no longer the volume it was at\n"
	"setup (replaced, removed, or a block device resized).\n"
	"Progress goes to stderr: a live line on a terminal, a line every\n"
	"--progress-interval seconds otherwise.\n\n"
	"  -s, --state DIR                state directory (default $VOLMIG_STATE)\n"
	"      --progress-interval SEC    seconds between progress lines when stderr\n"
	"                                 is not a terminal (default 5; 0: none)\n"
	"  -h, --help                     show this help\n";

struct verify_data {
	struct state_progress prog[SESS_MAX_PAIRS];
	struct region_map dirty[SESS_MAX_PAIRS];
	uint64_t lost;     /* pairs a writer could not log for: all dirty */
	uint64_t skipped;  /* regions found written during the comparison */
	uint32_t npairs;
	uint32_t state;    /* the session's, at the last load */
	/* progress: regions looked at of those below the cursors at start */
	uint64_t seen, todo;
	double t0, last, every; /* every: seconds between lines, 0 none */
	bool tty, shown;
};

/* A progress line when one is due (final: the last, on a terminal). */
static void verify_progress(struct verify_data *d, uint64_t bytes, bool final)
{
	double now = mono_now(), pct;
	char eta[32], rs[32];

	if (final ? !d->tty
		  : d->tty ? now - d->last < 0.5 : d->every <= 0 || now - d->last < d->every)
		return;
	d->last = now;
	d->shown = d->tty && !final; /* a live line waits for its end */
	pct = d->todo > 0 ? 100.0 * (double)(d->seen < d->todo ? d->seen : d->todo) /
				    (double)d->todo
			  : 100.0;
	if (d->seen > 0 && d->seen < d->todo) {
		double left = (now - d->t0) * (double)(d->todo - d->seen) / (double)d->seen;

		snprintf(eta, sizeof(eta), "%d:%02d", (int)(left / 60), (int)left % 60);
	} else {
		snprintf(eta, sizeof(eta), "--:--");
	}
	size_format(now > d->t0 ? (uint64_t)((double)bytes / (now - d->t0)) : 0, rs, sizeof(rs));
	if (d->tty)
		fprintf(stderr, "\r\033[Kvolmig: verifying %5.1f%%  %s/s  ETA %s%s", pct, rs, eta,
			final ? "\n" : "");
	else
		fprintf(stderr, "volmig: verifying %.1f%% %s/s ETA %s\n", pct, rs, eta);
	fflush(stderr);
}

static int verify_txn(struct state *st, DB_TXN *txn, void *arg)
{
	struct verify_data *d = arg;
	struct sess s;
	int rc = state_sess_get(st, txn, &s);

	if (rc < 0)
		return rc;
	d->state = s.state;
	sess_release(&s);
	for (uint32_t i = 0; i < d->npairs && rc == 0; i++) {
		region_map_clear_range(&d->dirty[i], 0, d->dirty[i].nbits);
		rc = state_progress_get(st, txn, i, &d->prog[i]);
		if (rc == 0)
			rc = state_dirty_load(st, txn, i, &d->dirty[i], NULL);
	}
	return rc;
}

/* Committed, writes go to the targets alone; aborted, to the sources alone:
 * a difference then means nothing. */
static const char *only_kept(uint32_t state)
{
	return state == SESS_COMMITTED ? "targets are" : "sources are";
}

/*
 * Load what is recorded clean: first the dirty log's records past their
 * durable offsets, then the cursors and the durable dirty set, with the
 * records' regions added to it.  A log that reads as corrupted is read
 * again (a copier may have punched out records it had just recorded, under
 * the old offsets), and reported only then.
 */
static int verify_load(struct verify_data *d, struct state *st, const struct sess *s,
		       const char *dir)
{
	struct ingest in;
	int rc;

	for (int tries = 0;; tries++) {
		ingest_reader(&in, dir, s, tries == 0);
		rc = ingest_collect(&in, st);
		if (rc != -EBADMSG || tries == 1)
			break;
		ingest_release(&in);
	}
	if (rc < 0) {
		report_errno("cannot read the dirty log of", dir, rc);
		goto out;
	}
	rc = state_txn(st, verify_txn, d);
	if (rc < 0) {
		report_errno("cannot read progress from", dir, rc);
		goto out;
	}
	for (size_t k = 0; k < in.nrecs; k++)
		region_map_set_range(&d->dirty[in.recs[k].pair], in.recs[k].first, in.recs[k].count);
	d->lost = in.lost_new;
out:
	ingest_release(&in);
	return rc;
}

/* Read region r of both volumes into a and b and compare them.  0 equal,
 * 1 different (*at: the offset of the first difference), -errno. */
static int compare_region(const struct sess_pair *p, int sfd, int tfd, unsigned char *a,
			  unsigned char *b, uint64_t off, size_t len, uint64_t *at)
{
	ssize_t na = io_pread_full(sfd, a, len, off), nb = io_pread_full(tfd, b, len, off);
	size_t k = 0;

	if (na < 0 || nb < 0) {
		int rc = (int)(na < 0 ? na : nb);

		log_err("%s %s: read at offset %llu failed: %s", na < 0 ? "source" : "target",
			na < 0 ? p->source : p->target, (unsigned long long)off, strerror(-rc));
		return rc;
	}
	/* past a file source's end: a file target ends there too, a block
	 * device reads as zeros */
	if (p->source_id.kind == SESS_KIND_FILE && (size_t)na < len) {
		memset(a + na, 0, len - (size_t)na);
		if (p->target_id.kind == SESS_KIND_BLOCK)
			na = (ssize_t)len;
		else if (nb == na) { /* the same end */
			memset(b + nb, 0, len - (size_t)nb);
			na = nb = (ssize_t)len;
		}
	}
	if ((size_t)na == len && (size_t)nb == len && memcmp(a, b, len) == 0)
		return 0;
	while (k < len && k < (size_t)na && k < (size_t)nb && a[k] == b[k])
		k++;
	*at = off + k;
	return 1;
}

static int verify_pair(struct state *st, const struct sess *s, const char *dir, uint32_t i,
		       struct verify_data *d, uint64_t *regions, uint64_t *bytes)
{
	const struct sess_pair *p = &s->pairs[i];
	uint64_t rsize = UINT64_C(1) << s->region_shift;
	unsigned char *a = NULL, *b = NULL;
	int sfd = -1, tfd = -1, rc = 0;

	sfd = open(p->source, O_RDONLY | O_CLOEXEC);
	if (sfd < 0) {
		rc = -errno;
		report_errno("cannot open source", p->source, rc);
		goto out;
	}
	tfd = open(p->target, O_RDONLY | O_CLOEXEC);
	if (tfd < 0) {
		rc = -errno;
		report_errno("cannot open target", p->target, rc);
		goto out;
	}
	a = malloc(rsize);
	b = malloc(rsize);
	if (a == NULL || b == NULL) {
		rc = -ENOMEM;
		log_err("out of memory");
		goto out;
	}
	for (uint64_t r = 0; r < d->prog[i].cursor; r++) {
		uint64_t off = r << s->region_shift, at = 0;
		uint64_t cap = sess_capacity(p);
		size_t len = (size_t)(cap - off < rsize ? cap - off : rsize);

		if (d->lost & (UINT64_C(1) << i))
			break;
		d->seen++;
		verify_progress(d, *bytes, false);
		if (region_map_test(&d->dirty[i], r))
			continue;
		rc = compare_region(p, sfd, tfd, a, b, off, len, &at);
		if (rc == 1) {
			/* written since the first read?  Read what is recorded
			 * clean anew, then the region again */
			rc = verify_load(d, st, s, dir);
			if (rc == 0 && (d->state == SESS_COMMITTED || d->state == SESS_ABORTED)) {
				log_err("session %s was %s while verify ran: only its %s kept up to "
					"date now, so the comparison stops", dir,
					sess_state_name(d->state), only_kept(d->state));
				rc = -ECANCELED;
				goto out;
			}
			if (rc == 0 && ((d->lost & (UINT64_C(1) << i)) || r >= d->prog[i].cursor ||
					region_map_test(&d->dirty[i], r))) {
				d->skipped++;
				continue;
			}
			if (rc == 0)
				rc = compare_region(p, sfd, tfd, a, b, off, len, &at);
		}
		if (rc == 1) {
			log_err("pair %u: target %s differs from source %s at offset %llu (region %llu)",
				i, p->target, p->source, (unsigned long long)at, (unsigned long long)r);
			rc = -EIO;
		}
		if (rc < 0)
			goto out;
		(*regions)++;
		*bytes += len;
	}
out:
	free(a);
	free(b);
	if (sfd >= 0)
		close(sfd);
	if (tfd >= 0)
		close(tfd);
	return rc;
}

int cmd_verify(int argc, char **argv)
{
	const char *dir;
	struct verify_data *d = NULL;
	uint64_t regions = 0, bytes = 0, total = 0;
	struct state st;
	struct sess s;
	int ret = EXIT_FAIL;
	char hb[32];

	uint64_t every_us = 5000000;

	dir = cli_parse_dir(argc, argv, verify_help, NULL, &every_us, NULL, &ret);
	if (dir == NULL)
		return ret;
	ret = EXIT_FAIL;
	if (session_open(dir, &st, &s) < 0)
		return EXIT_FAIL;
	if (s.state == SESS_COMMITTED || s.state == SESS_ABORTED) {
		log_err("session %s is %s: only its %s kept up to date, so sources and targets "
			"are not compared", dir, sess_state_name(s.state), only_kept(s.state));
		goto out;
	}
	/* a volume replaced, removed or resized is refused, as sync refuses
	 * it: its bytes are not the ones the session copied */
	if (session_check_pairs(dir, &st, &s) < 0)
		goto out;
	d = calloc(1, sizeof(*d));
	if (d == NULL) {
		log_err("out of memory");
		goto out;
	}
	d->npairs = s.npairs;
	for (uint32_t i = 0; i < s.npairs; i++) {
		if (region_map_init(&d->dirty[i],
				    region_count(sess_capacity(&s.pairs[i]), s.region_shift)) < 0) {
			log_err("out of memory");
			goto out;
		}
		total += sess_capacity(&s.pairs[i]);
	}
	if (verify_load(d, &st, &s, dir) < 0)
		goto out;
	CRASH_POINT("verify.loaded");
	for (uint32_t i = 0; i < s.npairs; i++)
		d->todo += d->prog[i].cursor;
	d->tty = isatty(STDERR_FILENO);
	d->every = (double)every_us / 1e6;
	d->t0 = d->last = mono_now();
	for (uint32_t i = 0; i < s.npairs; i++)
		if (verify_pair(&st, &s, dir, i, d, &regions, &bytes) < 0) {
			if (d->shown)
				fputc('\n', stderr);
			goto out;
		}
	verify_progress(d, bytes, true);
	for (uint32_t i = 0; i < s.npairs; i++)
		if (d->lost & (UINT64_C(1) << i))
			log_info("pair %u: a program could not log a write to %s, so all of it is to "
				 "be copied again: not compared", i, s.pairs[i].source);
	if (d->skipped > 0)
		log_info("%llu region%s written during the comparison, not compared (copied again)",
			 (unsigned long long)d->skipped, d->skipped == 1 ? "" : "s");
	log_info("verified %llu region%s (%s of %s): target identical to source",
		 (unsigned long long)regions, regions == 1 ? "" : "s",
		 size_format(bytes, hb, sizeof(hb)), size_format(total, (char[32]){ 0 }, 32));
	ret = EXIT_OK;
out:
	if (d != NULL)
		for (uint32_t i = 0; i < s.npairs; i++)
			region_map_release(&d->dirty[i]);
	free(d);
	sess_release(&s);
	state_close(&st);
	return ret;
}
