/*
 * trans: the cutover transitions (switch, commit), operator controls of a
 * running copier (pause, resume, throttle), and the recovery of a transition
 * cut off by a crash, which every command runs first (session_reconcile).
 *
 * The durable session record is the commit point of every transition; the
 * control block only announces it to running processes:
 *
 *   switch   SYNCED <-> SWITCHED.  Recorded, then announced.  Reads of a
 *            switched source go to the target wherever the region is clean
 *            (dirty regions are read from the source, which mirroring keeps
 *            complete), so no waiting is needed.
 *   commit   SYNCED or SWITCHED -> COMMITTED.  A pending record names the
 *            commit and its process; the commit holds new writes back (the
 *            barrier, a bounded wait per write, I5/I7) and from then on a
 *            mirrored write whose target write fails fails the application
 *            write, so every write after the barrier reaches the target by
 *            itself.  It ingests the dirty log, copies each region dirty at
 *            the barrier until one copy is not raced by a write, flushes the
 *            targets, records COMMITTED and drops the pending record in one
 *            transaction, then announces it.
 *
 * A commit cut off before its record is rolled back by the next command (the
 * session stays as it was: mirroring kept the source complete); one cut off
 * after it is finished (the state is announced).  `status` says which.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "crash.h"
#include "ctl.h"
#include "ingest.h"
#include "io.h"
#include "log.h"
#include "region.h"
#include "size.h"
#include "tgt.h"

#define COMMIT_WAIT_S 30.0      /* give up a commit that cannot catch up */
#define COMMIT_COPY_WAIT_US 100000

/* Map STATE/ctl if it exists and describes session s.  0 or -errno. */
static int ctl_map(const char *dir, const struct sess *s, struct ctl *c)
{
	char path[4200];
	int rc;

	memset(c, 0, sizeof(*c));
	rc = ctl_path(dir, path, sizeof(path));
	if (rc == 0)
		rc = ctl_attach(c, path);
	if (rc < 0)
		return rc;
	if (c->hdr->session_id != s->id) {
		ctl_detach(c);
		return -ESTALE;
	}
	return 0;
}

void session_announce(const char *dir, const struct sess *s, const struct state_control *k)
{
	struct ctl c;

	if (ctl_map(dir, s, &c) < 0)
		return;
	if (atomic_load_explicit(&c.hdr->state, memory_order_acquire) != s->state) {
		atomic_store_explicit(&c.hdr->state, s->state, memory_order_release);
		atomic_fetch_add_explicit(&c.hdr->epoch, 1, memory_order_acq_rel);
	}
	if (k != NULL) {
		atomic_store_explicit(&c.hdr->paused, k->paused, memory_order_release);
		atomic_store_explicit(&c.hdr->rate, k->rate, memory_order_release);
	}
	ctl_detach(&c);
}

static bool pending_alive(const struct state_control *k)
{
	uint64_t start;

	if (k->pending_pid <= 0 || k->pending_pid == getpid())
		return false;
	start = ctl_proc_start(k->pending_pid);
	return start != 0 && start == k->pending_start; /* 0: gone (or a zombie) */
}

struct reconcile_arg {
	struct state_control k;
	uint32_t state;
	bool rolled_back;
};

static int reconcile_txn(struct state *st, DB_TXN *txn, void *arg)
{
	struct reconcile_arg *a = arg;
	struct sess s;
	int rc;

	a->rolled_back = false;
	rc = state_control_get(st, txn, &a->k);
	if (rc < 0 || a->k.pending == 0 || pending_alive(&a->k))
		return rc;
	rc = state_sess_get(st, txn, &s);
	if (rc < 0)
		return rc;
	a->state = s.state;
	sess_release(&s);
	/* the commit record was not written: roll back (nothing to undo but
	 * the pending mark: mirroring kept the source complete) */
	a->k.recovered = a->state == a->k.pending ? STATE_RECOVERY_FINISHED
						  : STATE_RECOVERY_ROLLED_BACK;
	a->rolled_back = a->k.recovered == STATE_RECOVERY_ROLLED_BACK;
	a->k.recovered_state = a->k.pending;
	a->k.recovered_at = (uint64_t)time(NULL);
	a->k.pending = 0;
	a->k.pending_pid = 0;
	a->k.pending_start = 0;
	return state_control_put(st, txn, &a->k);
}

int session_reconcile(const char *dir, struct state *st, const struct sess *s)
{
	struct reconcile_arg a = { 0 };
	struct ctl c;
	int rc;

	rc = state_txn(st, reconcile_txn, &a);
	if (rc < 0) {
		report_errno("cannot read the controls of", dir, rc);
		return rc;
	}
	if (ctl_map(dir, s, &c) == 0) {
		int32_t holder = atomic_load_explicit(&c.hdr->barrier_pid, memory_order_acquire);
		uint32_t seen = atomic_load_explicit(&c.hdr->state, memory_order_acquire);

		/* announce a recorded change before the barrier of the commit
		 * that recorded it comes down: a copier holds its copies off
		 * while either says so */
		if (seen != s->state && atomic_load_explicit(&c.hdr->ready, memory_order_acquire)) {
			log_info("session %s: the change to %s recorded before a crash is now in "
				 "effect for running processes", dir, sess_state_name(s->state));
			atomic_store_explicit(&c.hdr->state, s->state, memory_order_release);
			atomic_fetch_add_explicit(&c.hdr->epoch, 1, memory_order_acq_rel);
		}
		if (holder != 0 && !(a.k.pending && pending_alive(&a.k)) && holder != getpid())
			atomic_compare_exchange_strong(&c.hdr->barrier_pid, &holder, 0);
		ctl_detach(&c);
	}
	if (a.rolled_back)
		log_info("session %s: a change to %s cut off before it was recorded was rolled back; the "
			 "session is %s", dir, sess_state_name(a.k.recovered_state),
			 sess_state_name(s->state));
	return 0;
}

/* ---- switch ----------------------------------------------------------- */

static const char switch_help[] =
	"usage: volmig switch -s DIR [--source]\n\n"
	"Send running applications' reads of the sources to the targets (the\n"
	"session must be synced; writes stay mirrored to both).  With --source,\n"
	"send them back.  Takes effect at each process's next read, without a\n"
	"restart.\n\n"
	"  -s, --state DIR   state directory (default $VOLMIG_STATE)\n"
	"      --source      switch back to the sources\n"
	"  -h, --help        show this help\n\n"
	"Exit status: 0 done, 1 failure (for example not synced), 2 usage error.\n";

int cmd_switch(int argc, char **argv)
{
	bool back = false;
	const char *dir;
	struct state st;
	struct sess s;
	uint32_t want;
	int ret = EXIT_FAIL, rc;

	dir = cli_parse_dir(argc, argv, switch_help, &back, NULL, NULL, &ret);
	if (dir == NULL)
		return ret;
	if (session_open(dir, &st, &s) < 0)
		return EXIT_FAIL;
	want = back ? SESS_SYNCED : SESS_SWITCHED;
	if (s.state == want) {
		log_info("session %s is already %s", dir, sess_state_name(want));
		ret = EXIT_OK;
		goto out;
	}
	if (s.state != (back ? SESS_SWITCHED : SESS_SYNCED)) {
		log_err("session %s is %s: switch%s needs a %s session%s", dir,
			sess_state_name(s.state), back ? " --source" : "",
			back ? "switched" : "synced",
			s.state == SESS_COPYING || s.state == SESS_SETUP ? " (run volmig sync first)" : "");
		goto out;
	}
	/* a stopped migration (a source past its capacity) keeps the sources */
	if (!back && session_check_pairs(dir, &st, &s) < 0)
		goto out;
	CRASH_POINT(back ? "state.unswitched.before" : "state.switched.before");
	rc = session_set_state(&st, want);
	if (rc < 0) {
		report_errno("cannot record the new state in", dir, rc);
		goto out;
	}
	CRASH_POINT(back ? "state.unswitched.after" : "state.switched.after");
	s.state = want;
	session_announce(dir, &s, NULL);
	log_info("session %s is %s: reads go to the %s", dir, sess_state_name(want),
		 back ? "sources" : "targets");
	ret = EXIT_OK;
out:
	sess_release(&s);
	state_close(&st);
	return ret;
}

/* ---- commit ----------------------------------------------------------- */

static const char commit_help[] =
	"usage: volmig commit -s DIR\n\n"
	"Make the targets the volumes in use, for good: running applications'\n"
	"reads and writes go to the targets only, and the sources are never\n"
	"written again.  The session must be synced or switched.  New writes are\n"
	"held back (at most 100 ms each) while the regions still dirty are copied\n"
	"and the targets flushed; if writes keep racing those copies for 30 s, the\n"
	"commit gives up and nothing changes.\n\n"
	"  -s, --state DIR   state directory (default $VOLMIG_STATE)\n"
	"  -h, --help        show this help\n\n"
	"Exit status: 0 committed, 1 failure (nothing changed), 2 usage error.\n";

struct pending_arg {
	uint32_t pending;
	int32_t pid;
	uint64_t start;
	uint32_t expect;   /* the state the transition starts from (check) */
	bool busy;         /* another live commit holds it */
};

static int pending_txn(struct state *st, DB_TXN *txn, void *arg)
{
	struct pending_arg *a = arg;
	struct state_control k;
	int rc;

	rc = state_control_get(st, txn, &k);
	if (rc < 0)
		return rc;
	a->busy = a->pending != 0 && k.pending != 0 && pending_alive(&k);
	if (a->busy)
		return 0;
	k.pending = a->pending;
	k.pending_pid = a->pending ? a->pid : 0;
	k.pending_start = a->pending ? a->start : 0;
	return state_control_put(st, txn, &k);
}

struct commit_rec_arg {
	struct ingest *in;
	uint32_t npairs;
	uint32_t from;
	bool moved;        /* the state changed under us (abort) */
};

static int commit_txn(struct state *st, DB_TXN *txn, void *arg)
{
	struct commit_rec_arg *a = arg;
	struct state_control k;
	struct sess s;
	int rc;

	rc = state_sess_get(st, txn, &s);
	if (rc < 0)
		return rc;
	a->moved = s.state != a->from;
	if (a->moved) {
		sess_release(&s);
		return 0;
	}
	s.state = SESS_COMMITTED;
	rc = state_sess_put(st, txn, &s);
	sess_release(&s);
	for (uint32_t i = 0; rc == 0 && i < a->npairs; i++) {
		struct state_progress p;

		rc = state_progress_get(st, txn, i, &p);
		if (rc == 0)
			rc = state_dirty_clear(st, txn, i);
		(void)p;
	}
	if (rc == 0)
		rc = ingest_record(a->in, st, txn);
	if (rc == 0)
		rc = state_control_get(st, txn, &k);
	if (rc == 0) {
		k.pending = 0;
		k.pending_pid = 0;
		k.pending_start = 0;
		rc = state_control_put(st, txn, &k);
	}
	return rc;
}

struct commit_vol {
	int src, tgt;
};

/* Copy region r of pair p through the region protocol.  1 copied clean, 0
 * still dirty (a write went ahead), -errno.  Past a file source's end the
 * target reads as zeros (a file target is not written there).  held: the
 * region is dirty in durable state until the commit records (it was dirty
 * when the commit began), so it stays marked dirty after a clean copy: a
 * write held at the barrier then goes on with no dirty-log record, whose
 * flush would wait behind the commit's writeback. */
static int commit_copy(struct ctl *c, const struct sess *s, struct commit_vol *v, uint32_t p,
		       uint64_t r, void *buf, bool held)
{
	const struct sess_pair *sp = &s->pairs[p];
	uint64_t rs = UINT64_C(1) << s->region_shift, off = r << s->region_shift;
	uint64_t cap = sess_capacity(sp), len = cap - off < rs ? cap - off : rs, put = len;
	bool tgt_file = sp->target_id.kind == SESS_KIND_FILE;
	ssize_t n;
	int rc;

	if (ctl_copy_begin(c, p, r, COMMIT_COPY_WAIT_US) == -EBUSY)
		return 0;
	n = io_pread_full(v[p].src, buf, (size_t)len, off);
	if (n >= 0 && (uint64_t)n != len && sp->source_id.kind != SESS_KIND_FILE)
		n = -EIO;
	rc = n < 0 ? (int)n : 0;
	if (rc == 0) {
		uint64_t got = (uint64_t)n < len ? (uint64_t)n : len;

		memset((char *)buf + got, 0, (size_t)(len - got));
		if (tgt_file)
			put = got;
		rc = io_pwrite_full(v[p].tgt, buf, (size_t)put, off);
		/* start writeback now (no wait): the flush before the commit's
		 * record then finds less left, and the writes held back meanwhile
		 * wait less for the disk */
		if (rc == 0)
			(void)sync_file_range(v[p].tgt, (off64_t)off, (off64_t)put,
					      SYNC_FILE_RANGE_WRITE);
	}
	if (rc == 0 && put < len)
		rc = tgt_zero(v[p].tgt, tgt_file, off + put, len - put, buf, (size_t)rs);
	if (rc < 0) {
		ctl_copy_end(c, p, r);
		ctl_mark_dirty(c, p, r);
		log_err("pair %u: copying %llu bytes at offset %llu failed: %s", p,
			(unsigned long long)len, (unsigned long long)off, strerror(-rc));
		return rc;
	}
	return held ? ctl_copy_end_held(c, p, r) : ctl_copy_end(c, p, r);
}

/*
 * With every dirty region copied and the target lock held: a file source
 * past its capacity stops the migration (-EFBIG); a file target longer than
 * its source is cut back; one shorter (it should not be) gets the regions
 * between the two ends in todo, to be copied again.  Returns the regions
 * added, or -errno (reported).
 */
static int commit_lengths(const char *dir, struct state *st, const struct sess *s,
			  struct commit_vol *v, int lock_fd, struct region_map *todo)
{
	int added = 0;

	for (uint32_t i = 0; i < s->npairs; i++) {
		const struct sess_pair *sp = &s->pairs[i];
		struct stat a, b;
		int rc;

		if (sp->source_id.kind != SESS_KIND_FILE)
			continue;
		if (fstat(v[i].src, &a) < 0 || fstat(v[i].tgt, &b) < 0) {
			rc = -errno;
			report_errno("cannot read the size of", sp->source, rc);
			return rc;
		}
		if ((uint64_t)a.st_size > sess_capacity(sp))
			return session_stop(dir, st, s, i, (uint64_t)a.st_size);
		if (sp->target_id.kind != SESS_KIND_FILE || a.st_size == b.st_size)
			continue;
		if (b.st_size > a.st_size) {
			rc = tgt_trim(lock_fd, true, v[i].src, v[i].tgt, NULL, NULL);
			if (rc < 0) {
				report_errno("cannot cut back target", sp->target, rc);
				return rc;
			}
			continue;
		}
		for (uint64_t r = (uint64_t)b.st_size >> s->region_shift;
		     r <= ((uint64_t)a.st_size - 1) >> s->region_shift && r < todo[i].nbits; r++) {
			region_map_set(&todo[i], r);
			added++;
		}
	}
	return added;
}

static int commit_run(const char *dir, struct state *st, struct sess *s)
{
	struct pending_arg pa = { .pending = SESS_COMMITTED, .pid = getpid(),
				  .start = ctl_proc_start(getpid()) };
	struct commit_rec_arg ca = { .npairs = s->npairs, .from = s->state };
	struct ingest in = { .dir = dir, .session_id = s->id, .npairs = s->npairs };
	struct commit_vol v[SESS_MAX_PAIRS];
	struct ctl c = { 0 };
	struct region_map todo[SESS_MAX_PAIRS] = { 0 };
	double deadline = mono_now() + COMMIT_WAIT_S;
	uint64_t copied = 0, left = 0;
	void *buf = NULL;
	int lock_fd = -1, rc, passes = 0;
	bool recorded = false, lengths_added = false;

	for (uint32_t i = 0; i < s->npairs; i++)
		v[i].src = v[i].tgt = -1;
	rc = state_txn(st, pending_txn, &pa);
	if (rc == 0 && pa.busy) {
		log_err("session %s: another commit is running", dir);
		return -EBUSY;
	}
	if (rc < 0) {
		report_errno("cannot record the commit in", dir, rc);
		return rc;
	}
	CRASH_POINT("state.committed.pending");
	rc = session_check_pairs(dir, st, s);
	if (rc < 0)
		goto rollback;
	rc = session_ctl_open(dir, st, s, false, &c, &lock_fd);
	if (rc < 0) {
		report_errno("cannot open the control block of", dir, rc);
		goto rollback;
	}
	for (uint32_t i = 0; i < s->npairs; i++) {
		in.nregions[i] = c.hdr->pairs[i].nregions;
		v[i].src = open(s->pairs[i].source, O_RDONLY | O_CLOEXEC);
		v[i].tgt = open(s->pairs[i].target, O_RDWR | O_CLOEXEC);
		if (v[i].src < 0 || v[i].tgt < 0) {
			rc = -errno;
			report_errno("cannot open", v[i].src < 0 ? s->pairs[i].source : s->pairs[i].target,
				     rc);
			goto rollback;
		}
	}
	buf = malloc((size_t)1 << s->region_shift);
	if (buf == NULL) {
		rc = -ENOMEM;
		goto rollback;
	}
	/* Hold new writes back: each waits at most its bounded time, then goes
	 * ahead mirrored -- and from now on fails if the target misses it.
	 * So only the regions dirty now need a copy: every later write reaches
	 * the target by itself. */
	atomic_store_explicit(&c.hdr->barrier_pid, getpid(), memory_order_seq_cst);
	/* Hold off the copier's own copies (and its cutting back of targets)
	 * until the committed state is announced or the commit rolled back:
	 * from then on nothing is copied onto a target from its source.  Taken
	 * before the dirty set is read: a copy in progress read its source
	 * before a write past the barrier mirrored its bytes, and its write
	 * of the target would undo them; once it ends (the lock is ours) its
	 * region is dirty again (the write raced it), so it is copied below. */
	rc = ctl_lock_length(lock_fd, F_WRLCK);
	if (rc < 0) {
		report_errno("cannot take the target lock of", dir, rc);
		goto rollback;
	}
	rc = ingest_collect(&in, st);
	if (rc < 0) {
		report_errno("cannot read the dirty log of", dir, rc);
		goto rollback;
	}
	for (size_t k = 0; k < in.nrecs; k++)
		for (uint64_t r = in.recs[k].first; r < in.recs[k].first + in.recs[k].count; r++)
			ctl_mark_dirty(&c, in.recs[k].pair, r);
	for (uint32_t i = 0; i < s->npairs; i++)
		if (in.lost_new & (UINT64_C(1) << i))
			for (uint64_t r = 0; r < c.hdr->pairs[i].nregions; r++)
				ctl_mark_dirty(&c, i, r);
	for (uint32_t i = 0; i < s->npairs; i++) {
		rc = region_map_init(&todo[i], c.hdr->pairs[i].nregions);
		if (rc < 0)
			goto rollback;
		for (uint64_t r = 0; r < c.hdr->pairs[i].nregions; r++)
			if (atomic_load_explicit(ctl_region(&c, i, r), memory_order_acquire) & CTL_DIRTY)
				region_map_set(&todo[i], r);
		left += todo[i].count;
	}
again:
	while (left > 0) {
		passes++;
		/* a writer that died mid-write holds in-flight counts that would
		 * keep its regions raced: take them back (the copier does too,
		 * but a commit may run with no copier) */
		ctl_repair_dead(&c);
		left = 0;
		for (uint32_t i = 0; i < s->npairs; i++) {
			for (uint64_t r = region_map_next_set(&todo[i], 0); r < todo[i].nbits;
			     r = region_map_next_set(&todo[i], r + 1)) {
				rc = commit_copy(&c, s, v, i, r, buf, !lengths_added);
				if (rc < 0)
					goto rollback;
				if (rc == 1) { /* copied with no write racing it */
					region_map_clear(&todo[i], r);
					copied++;
				}
			}
			left += todo[i].count;
		}
		if (left > 0 && mono_now() > deadline) {
			log_err("session %s: %llu regions could not be copied without a write racing "
				"the copy for %.0f s; not committed", dir, (unsigned long long)left,
				COMMIT_WAIT_S);
			rc = -EAGAIN;
			goto rollback;
		}
	}
	rc = commit_lengths(dir, st, s, v, lock_fd, todo);
	if (rc < 0)
		goto rollback;
	if (rc > 0) {
		left = (uint64_t)rc;
		lengths_added = true;
		goto again;
	}
	for (uint32_t i = 0; i < s->npairs; i++) {
		rc = io_fdatasync(v[i].tgt);
		if (rc < 0) {
			report_errno("cannot flush target", s->pairs[i].target, rc);
			goto rollback;
		}
	}
	CRASH_POINT("state.committed.before");
	ca.in = &in;
	rc = state_txn(st, commit_txn, &ca);
	if (rc == 0 && ca.moved) {
		log_err("session %s changed state during the commit; not committed", dir);
		rc = -ECANCELED;
		goto rollback;
	}
	if (rc < 0) {
		report_errno("cannot record the commit in", dir, rc);
		goto rollback;
	}
	recorded = true;
	ingest_done(&in);
	CRASH_POINT("state.committed.after");
	s->state = SESS_COMMITTED;
	atomic_store_explicit(&c.hdr->state, SESS_COMMITTED, memory_order_seq_cst);
	atomic_fetch_add_explicit(&c.hdr->epoch, 1, memory_order_acq_rel);
	atomic_store_explicit(&c.hdr->barrier_pid, 0, memory_order_release);
	log_info("session %s committed (%llu dirty regions copied in %d pass%s): the targets "
		 "are the volumes in use", dir, (unsigned long long)copied, passes,
		 passes == 1 ? "" : "es");
	goto out;

rollback:
	if (!recorded) {
		struct pending_arg clear = { 0 };

		if (c.hdr != NULL)
			atomic_store_explicit(&c.hdr->barrier_pid, 0, memory_order_release);
		if (state_txn(st, pending_txn, &clear) < 0)
			log_err("session %s: the cut-off commit is rolled back by the next command", dir);
		ingest_undo(&in);
	}
out:
	for (uint32_t i = 0; i < s->npairs; i++) {
		if (v[i].src >= 0)
			close(v[i].src);
		if (v[i].tgt >= 0)
			close(v[i].tgt);
	}
	free(buf);
	for (uint32_t i = 0; i < s->npairs; i++)
		region_map_release(&todo[i]);
	ingest_release(&in);
	if (c.hdr != NULL)
		ctl_detach(&c);
	if (lock_fd >= 0)
		close(lock_fd);
	return rc;
}

int cmd_commit(int argc, char **argv)
{
	const char *dir;
	struct state st;
	struct sess s;
	int ret = EXIT_FAIL;

	dir = cli_parse_dir(argc, argv, commit_help, NULL, NULL, NULL, &ret);
	if (dir == NULL)
		return ret;
	if (session_open(dir, &st, &s) < 0)
		return EXIT_FAIL;
	if (s.state == SESS_COMMITTED) {
		log_info("session %s is already committed", dir);
		ret = EXIT_OK;
	} else if (s.state != SESS_SYNCED && s.state != SESS_SWITCHED) {
		log_err("session %s is %s: commit needs a synced or switched session%s", dir,
			sess_state_name(s.state),
			s.state == SESS_COPYING || s.state == SESS_SETUP ? " (run volmig sync first)" : "");
	} else if (commit_run(dir, &st, &s) == 0) {
		ret = EXIT_OK;
	}
	sess_release(&s);
	state_close(&st);
	return ret;
}

/* ---- pause, resume, throttle ------------------------------------------ */

struct control_arg {
	int what;          /* 0 pause, 1 resume, 2 throttle */
	uint64_t rate;
	struct state_control k;
	bool was_paused; /* before this command */
};

static int control_txn(struct state *st, DB_TXN *txn, void *arg)
{
	struct control_arg *a = arg;
	int rc = state_control_get(st, txn, &a->k);

	if (rc < 0)
		return rc;
	a->was_paused = a->k.paused != 0;
	if (a->what == 0)
		a->k.paused = 1;
	else if (a->what == 1)
		a->k.paused = 0;
	else
		a->k.rate = a->rate;
	return state_control_put(st, txn, &a->k);
}

#define CONTROL_TAIL                                                                       \
	"  -s, --state DIR   state directory (default $VOLMIG_STATE)\n"                 \
	"  -h, --help        show this help\n\n"                                          \
	"It takes effect within a second in a running copier (volmig sync) and holds\n"   \
	"for every copier started later.  Exit status: 0 done, 1 failure, 2 usage.\n"

static const char *const control_help[] = {
	"usage: volmig pause -s DIR\n\n"
	"Stop copying (volmig resume goes on).  Writes are still tracked.\n\n" CONTROL_TAIL,
	"usage: volmig resume -s DIR\n\n"
	"Go on copying after volmig pause.\n\n" CONTROL_TAIL,
	"usage: volmig throttle -s DIR BYTES_PER_S\n\n"
	"Set the copy bandwidth limit (k/M/G suffixes; 0 for no limit) in place of\n"
	"sync's --rate.\n\n" CONTROL_TAIL,
};

static int control_cmd(int argc, char **argv, int what)
{
	struct control_arg a = { .what = what };
	const char *dir, *arg = NULL;
	struct state st;
	struct sess s;
	int ret = EXIT_FAIL, rc;

	dir = cli_parse_dir(argc, argv, control_help[what], NULL, NULL, what == 2 ? &arg : NULL,
			    &ret);
	if (dir == NULL)
		return ret;
	if (what == 2 && size_parse(arg, &a.rate) < 0) {
		log_err("throttle %s: want bytes per second, like 50M (0 for no limit)", arg);
		return EXIT_USAGE;
	}
	if (what == 2 && a.rate == 0)
		a.rate = UINT64_MAX; /* stored as "no limit"; 0 means "not set" */
	if (session_open(dir, &st, &s) < 0)
		return EXIT_FAIL;
	rc = state_txn(&st, control_txn, &a);
	if (rc < 0) {
		report_errno("cannot record the control in", dir, rc);
		goto out;
	}
	session_announce(dir, &s, &a.k);
	if (what == 2) {
		char r[32];

		size_format(a.rate, r, sizeof(r));
		if (a.rate == UINT64_MAX)
			log_info("session %s: no copy bandwidth limit", dir);
		else
			log_info("session %s: copy bandwidth limit %s/s", dir, r);
	} else if (a.was_paused == (what == 0)) {
		log_info("session %s: copying was %s", dir, what == 0 ? "already paused" : "not paused");
	} else {
		log_info("session %s: copying %s", dir, what == 0 ? "paused" : "resumed");
	}
	ret = EXIT_OK;
out:
	sess_release(&s);
	state_close(&st);
	return ret;
}

int cmd_pause(int argc, char **argv)
{
	return control_cmd(argc, argv, 0);
}

int cmd_resume(int argc, char **argv)
{
	return control_cmd(argc, argv, 1);
}

int cmd_throttle(int argc, char **argv)
{
	return control_cmd(argc, argv, 2);
}
