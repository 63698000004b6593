/*
 * engine: region copy, checkpoints and resume.
 *
 * Work comes in three kinds, handed out in this order by next_work():
 *   bulk   the next region at or past a pair's bulk position;
 *   hole   a run of bulk regions that lie wholly in a hole of a file source
 *          (SEEK_DATA/SEEK_HOLE): the target range is punched or zeroed,
 *          not copied, so a file target stays sparse;
 *   dirty  a region below the bulk position whose control-block DIRTY bit
 *          is set (kept dirty by a raced copy, or from the durable dirty set).
 * Every region goes through ctl_copy_begin/ctl_copy_end (I4): a region is
 * counted clean only when no write raced its copy.
 *
 * Checkpoint (I3): under the mutex, take each pair's new cursor (the first
 * bulk region not yet done) and the pending changes to the dirty set; then,
 * outside it, fdatasync every target; then one transaction records cursors,
 * counters and dirty-set changes.  A region is therefore recorded clean only
 * after its data is flushed, and a crash loses at most the work since the
 * last checkpoint (I6).
 *
 * Recopy accounting: when the copying of a bulk item begins, the pair's
 * high-water mark of begun regions is written to STATE/progress.hint (no
 * fsync: it must only survive a process kill, and a lost hint only
 * under-reports a statistic).  After a resume, bulk regions below it are
 * counted as bytes_recopied.
 */
#include "engine.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "ctl.h"
#include "crash.h"
#include "ingest.h"
#include "io.h"
#include "log.h"
#include "region.h"
#include "size.h"
#include "tgt.h"

#define HOLE_BATCH 4096        /* regions per hole work item at most */
#define COPY_WAIT_US 1000000   /* how long a copy waits for writes to drain */
#define DIRECT_ALIGN 4096
/* A bulk copy moves a run of neighbouring regions per I/O: buffered, up to
 * 4 MiB near a hole (NORA_SPAN); direct, up to 16 MiB a thread and 64 MiB
 * in all (fewer per thread past 4 threads); RUN_REGIONS at most (see
 * run_regions and next_bulk). */
#define RUN_REGIONS 64
#define BUFFERED_RUN_BYTES (UINT64_C(4) << 20)
#define DIRECT_RUN_BYTES (UINT64_C(16) << 20)
#define DIRECT_RUN_ALL (UINT64_C(64) << 20)
/* Buffered reads of a file source this close to the end of its data go
 * through a descriptor without readahead: the kernel's readahead would run
 * on into the hole and fill the page cache with zeros (twice the largest
 * readahead window, 8 MiB, that a read can have in flight ahead of it). */
#define NORA_SPAN (UINT64_C(16) << 20)

enum work_kind { WORK_NONE, WORK_BULK, WORK_HOLE, WORK_DIRTY };

struct work {
	enum work_kind kind;
	uint32_t pair;
	uint64_t first, n;
	bool near_hole;            /* bulk: read without readahead (NORA_SPAN) */
	double *begun;             /* the worker's slot in e->begun */
};

struct u64vec {
	uint64_t *v;
	size_t n, cap;
};

struct pair_rt {
	const struct sess_pair *sp;
	int src_fd, tgt_fd;        /* O_DIRECT when asked */
	int src_buf_fd, tgt_buf_fd; /* buffered: unaligned tails, zeroing */
	int src_nora_fd;            /* buffered file source: POSIX_FADV_RANDOM
				       (no readahead), or -1 */
	bool src_file, tgt_file;
	uint64_t cap;               /* bytes tracked (sess_capacity) */
	uint64_t nregions;
	uint64_t bulk_next;         /* next bulk region to hand out */
	uint64_t hint_end;          /* the highest bulk region end whose copying
				       began, as in progress.hint (at start:
				       prog.hwm; under mu) */
	uint64_t recopy_limit;      /* bulk regions below it count as recopied */
	uint64_t ext_from;          /* cached extent of a file source: */
	uint64_t data_start, data_end; /* [ext_from, data_start) is a hole,
					  [data_start, data_end) data */
	uint64_t dirty_scan;        /* where the dirty pass looks next */
	struct region_map done;     /* bulk regions finished (clean or kept) */
	struct region_map busy;     /* regions being copied now */
	struct region_map pend_add; /* to add to the durable dirty set */
	struct region_map pend_del; /* to remove from the durable dirty set */
	struct region_map ddirty;   /* the durable dirty set as of the last
				       snapshot (it only grows by pend_add and
				       shrinks by pend_del) */
	uint64_t pend_copied, pend_recopied;
	struct u64vec ahead;        /* bulk regions done at or past the cursor:
				       (region, bytes) pairs, counted by the
				       checkpoint whose cursor passes them (a
				       kill before it redoes them) */
	struct state_progress prog; /* as last committed (main thread only) */
	bool prog_dirty;            /* prog.hwm changed, not yet committed */
};

struct engine {
	const char *dir;
	struct state *st;
	struct sess *s;
	const struct engine_opts *o;
	struct ctl ctl;
	unsigned shift;
	uint64_t region_size;
	uint64_t run_max;        /* regions per bulk I/O at most (run_regions) */
	uint32_t npairs;
	struct pair_rt *pairs;
	int hint_fd;
	int ctl_lock;            /* shared attach lock on STATE/ctl.lock */
	struct ingest in;        /* the dirty log, read at each checkpoint */
	bool ingested;           /* the last checkpoint found log records */
	bool repaired;           /* ... or took back a dead writer's counts */
	bool trim_failed;        /* the last state_log_checkpoint failed */

	pthread_mutex_t mu;
	pthread_cond_t work_cv;  /* workers wait here for work */
	pthread_cond_t main_cv;  /* the main loop waits here */
	int error;               /* first failure, -errno */
	bool stop;               /* workers finish their item and exit */
	unsigned active;         /* workers holding an item */
	double hold_at;          /* no new item from this time on until the
				    next checkpoint commits (I6; engine_run) */
	double *begun;           /* per worker, under mu: when the copying of
				    its item began (item_begins), 0 for none */
	_Atomic unsigned nbegun; /* slots handed to workers */

	pthread_mutex_t rate_mu;
	double rate_next;        /* when the next byte may be read */
	uint64_t rate_used;      /* the limit rate_next was computed with */
	double lazy_until;       /* mirrored: no dirty pass before this time */
	unsigned mirror_passes;  /* dirty passes completed while mirrored */

	_Atomic uint64_t bytes_done; /* data bytes written, for the rate shown */
	double prog_t0;              /* when this run started copying, and */
	uint64_t prog_done0;         /* the bulk regions done then (for the ETA) */
	uint32_t state_seen;         /* session state read by the last checkpoint */
	uint64_t regions_total;
};

static volatile sig_atomic_t engine_signal;

static void on_signal(int sig)
{
	engine_signal = sig;
}

static int vec_push(struct u64vec *v, uint64_t x)
{
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 256;
		uint64_t *nv = realloc(v->v, cap * sizeof(*nv));
		if (nv == NULL)
			return -ENOMEM;
		v->v = nv;
		v->cap = cap;
	}
	v->v[v->n++] = x;
	return 0;
}

static uint64_t region_len(const struct engine *e, const struct pair_rt *p, uint64_t r)
{
	uint64_t off = r << e->shift;

	return p->cap - off < e->region_size ? p->cap - off : e->region_size;
}

/* Record the first failure and stop everything. Caller holds mu. */
static void fail_locked(struct engine *e, int rc)
{
	if (e->error == 0)
		e->error = rc;
	e->stop = true;
	pthread_cond_broadcast(&e->work_cv);
	pthread_cond_signal(&e->main_cv);
}

static void hint_write(struct engine *e, uint32_t pair, uint64_t hwm)
{
	uint8_t b[8];

	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(hwm >> (8 * i));
	if (e->hint_fd >= 0 && pwrite(e->hint_fd, b, 8, (off_t)(8 + 8 * (uint64_t)pair)) != 8) {
		/* a statistic only; never stop a copy for it */
	}
}

/* Refresh the cached data extent of a file source around offset off. */
static void find_data(struct pair_rt *p, uint64_t off)
{
	off_t d, h;

	p->ext_from = off;
	d = lseek(p->src_buf_fd, (off_t)off, SEEK_DATA);
	if (d < 0) {
		if (errno == ENXIO) {
			p->data_start = p->data_end = p->cap; /* hole to the end */
			return;
		}
		/* no SEEK_DATA here: treat everything as data */
		p->data_start = off;
		p->data_end = p->cap;
		return;
	}
	h = lseek(p->src_buf_fd, d, SEEK_HOLE);
	p->data_start = (uint64_t)d;
	p->data_end = h < 0 ? p->cap : (uint64_t)h;
}

/* The bandwidth limit in force: volmig throttle's, else sync's --rate. */
static uint64_t current_rate(const struct engine *e)
{
	uint64_t r = atomic_load_explicit(&e->ctl.hdr->rate, memory_order_relaxed);

	if (r == 0)
		return e->o->rate;
	return r == UINT64_MAX ? 0 : r;
}

/* volmig pause is in force (the control block; volmig resume clears it). */
static bool paused(const struct engine *e)
{
	return atomic_load_explicit(&e->ctl.hdr->paused, memory_order_relaxed) != 0;
}

/* Do buffered reads of p's source that end at region end read without
 * readahead (NORA_SPAN)?  Caller holds mu (the cached extent). */
static bool near_hole(const struct engine *e, const struct pair_rt *p, uint64_t end)
{
	return p->src_nora_fd >= 0 && p->data_end < p->cap &&
	       (end << e->shift) + NORA_SPAN > p->data_end;
}

/* Pick the next item of bulk work of pair p. Caller holds mu. */
static bool next_bulk(struct engine *e, uint32_t pi, struct work *w)
{
	struct pair_rt *p = &e->pairs[pi];
	uint64_t r = p->bulk_next, off = r << e->shift, n = 1, rate;

	if (r >= p->nregions)
		return false;
	w->kind = WORK_BULK;
	if (p->src_file) {
		if (off < p->ext_from || off >= p->data_end)
			find_data(p, off);
		if (off + region_len(e, p, r) <= p->data_start) {
			/* regions wholly before the next data: a hole */
			uint64_t end = p->data_start >= p->cap ? p->nregions
								     : p->data_start >> e->shift;

			n = end - r;
			if (n > HOLE_BATCH)
				n = HOLE_BATCH;
			w->kind = WORK_HOLE;
		}
	}
	if (w->kind == WORK_BULK && e->run_max > 1 && (e->o->direct || near_hole(e, p, r + 1))) {
		/* a run of neighbouring full-size regions wholly below the
		 * end of the data (copy_run); a region the data ends in is
		 * copied alone.  Buffered, only near a hole: reads there have
		 * no readahead, so the request is all the disk sees */
		uint64_t lim = p->cap >> e->shift;

		if (p->src_file && p->data_end >> e->shift < lim)
			lim = p->data_end >> e->shift;
		n = lim > r ? lim - r : 1;
		if (n > e->run_max)
			n = e->run_max;
		/* under a bandwidth limit, a run is a tenth of a second's worth:
		 * the copy stays smooth, and a kill loses little more */
		rate = current_rate(e);
		if (rate > 0 && n > (rate / 10 >> e->shift))
			n = rate / 10 >> e->shift;
		if (n == 0)
			n = 1;
	}
	w->pair = pi;
	w->first = r;
	w->n = n;
	w->near_hole = w->kind == WORK_BULK && near_hole(e, p, r + n);
	p->bulk_next = r + n;
	region_map_set_range(&p->busy, r, n);
	return true;
}

/* Synced or switched: writes go to both volumes. */
static bool mirrored(const struct engine *e)
{
	uint32_t st = atomic_load_explicit(&e->ctl.hdr->state, memory_order_relaxed);

	return st == SESS_SYNCED || st == SESS_SWITCHED;
}

/*
 * Pick a dirty region below the bulk position. Caller holds mu.
 *
 * A --follow copier, while mirrored, confirms a dirty region only once no
 * write has begun on it for a whole pass (CTL_QUIET, set here and cleared by
 * every write's begin).  Mirroring keeps such a region's target current; a
 * copy of a region that is still being written would be dirty again at
 * once, and cost a copy of the whole region per pass and a dirty-log record
 * at its next write: fio rewriting 256 regions of 1 MiB made the copier
 * copy 192 MiB/s while fio wrote 125 MiB/s.  Regions written all along stay
 * dirty and are copied by the commit, as they would have been dirty again
 * by then anyway.  A sync that ends (no --follow) copies every dirty region
 * in its pass, as before.
 */
static bool next_dirty(struct engine *e, uint32_t pi, struct work *w)
{
	struct pair_rt *p = &e->pairs[pi];
	_Atomic uint32_t *words = ctl_region(&e->ctl, pi, 0);
	uint64_t limit = p->bulk_next;
	bool defer = e->o->follow && mirrored(e);

	/* lap 0 from where the last scan stopped, lap 1 the part before it */
	for (int lap = 0; lap < 2; lap++) {
		if (lap == 1 && mirrored(e)) {
			/* Mirroring keeps the target up to date; a region stays
			 * dirty only until the copier confirms it, which it does
			 * lazily: one pass per checkpoint interval, not in a loop
			 * behind a program that keeps writing the same regions. */
			e->lazy_until = mono_now() + (double)e->o->checkpoint_us / 1e6;
			e->mirror_passes++;
			p->dirty_scan = 0;
			return false;
		}
		uint64_t from = p->dirty_scan;

		for (uint64_t r = from; r < limit; r++) {
			uint32_t word = atomic_load_explicit(&words[r], memory_order_relaxed);

			if ((word & CTL_DIRTY) && !region_map_test(&p->busy, r)) {
				if (defer && !(word & CTL_QUIET)) {
					/* written since the last pass: look again at the next */
					atomic_fetch_or_explicit(&words[r], CTL_QUIET,
								 memory_order_relaxed);
					continue;
				}
				w->kind = WORK_DIRTY;
				w->pair = pi;
				w->first = r;
				w->n = 1;
				w->near_hole = false;
				p->dirty_scan = r + 1;
				region_map_set(&p->busy, r);
				return true;
			}
		}
		p->dirty_scan = 0;
		limit = from;
	}
	return false;
}

static bool next_work(struct engine *e, struct work *w)
{
	if (paused(e)) {
		w->kind = WORK_NONE;
		return false; /* volmig pause: writes are still tracked */
	}
	if (mono_now() >= e->hold_at) {
		w->kind = WORK_NONE;
		return false; /* a checkpoint overran: it commits first */
	}
	for (uint32_t i = 0; i < e->npairs; i++)
		if (next_bulk(e, i, w))
			return true;
	if (e->lazy_until > 0 && mirrored(e) && mono_now() < e->lazy_until) {
		w->kind = WORK_NONE;
		return false;
	}
	for (uint32_t i = 0; i < e->npairs; i++)
		if (next_dirty(e, i, w))
			return true;
	w->kind = WORK_NONE;
	return false;
}

/*
 * The copying of item w begins, unless it began already (an item copied
 * region by region).  Not while the hold is on: an item taken before the
 * hold began and waiting for the bandwidth limit past it would otherwise
 * copy unrecorded all the same (I6; engine_run).  The start is recorded
 * for the next checkpoint's hold (checkpoint).  Caller does not hold mu.
 */
static void item_begins(struct engine *e, const struct work *w)
{
	struct pair_rt *p = &e->pairs[w->pair];

	if (*w->begun != 0)
		return; /* only this thread writes its slot */
	pthread_mutex_lock(&e->mu);
	while (!e->stop && mono_now() >= e->hold_at)
		pthread_cond_wait(&e->work_cv, &e->mu);
	*w->begun = mono_now();
	if (w->kind != WORK_DIRTY && w->first + w->n > p->hint_end) {
		p->hint_end = w->first + w->n;
		hint_write(e, w->pair, p->hint_end);
	}
	pthread_mutex_unlock(&e->mu);
}

static bool stopping(struct engine *e)
{
	bool stop;

	pthread_mutex_lock(&e->mu);
	stop = e->stop;
	pthread_mutex_unlock(&e->mu);
	return stop;
}

/* Wait for the bandwidth limit to allow len more bytes of item w, whose
 * copying then begins (item_begins).  A new limit (volmig throttle) takes
 * effect within 0.1 s, also for a thread already waiting.  A pause holds
 * the item here until volmig resume, limit or not: next_work hands out no
 * new item while paused, and an item taken before the pause (or the rest
 * of one copied region by region) must not copy either.  False, with the
 * item not begun, when the copier stops meanwhile: under a low limit or a
 * pause the wait can be minutes, and a SIGTERM or an abort must not wait
 * for it (the caller leaves the rest of the item to the next run). */
static bool rate_wait(struct engine *e, const struct work *w, uint64_t len)
{
	uint64_t rate = current_rate(e);
	double now, at = 0;

	if (rate > 0) {
		pthread_mutex_lock(&e->rate_mu);
		now = mono_now();
		if (rate != e->rate_used) {
			e->rate_used = rate;
			if (e->rate_next > now)
				e->rate_next = now;
		}
		at = e->rate_next > now ? e->rate_next : now;
		e->rate_next = at + (double)len / (double)rate;
		pthread_mutex_unlock(&e->rate_mu);
	}
	for (;;) {
		bool hold = paused(e);
		struct timespec ts;
		double d;

		now = mono_now();
		if (!hold && (now >= at || current_rate(e) != rate))
			break;
		if (stopping(e))
			return false;
		d = hold || at - now > 0.1 ? 0.1 : at - now;
		ts.tv_sec = (time_t)d;
		ts.tv_nsec = (long)((d - (double)ts.tv_sec) * 1e9);
		nanosleep(&ts, NULL);
	}
	item_begins(e, w);
	return true;
}

static bool all_zero(const void *buf, size_t len)
{
	const uint64_t *w = buf;
	const unsigned char *b;
	size_t i;

	for (i = 0; i < len / 8; i++)
		if (w[i] != 0)
			return false;
	for (b = buf, i = i * 8; i < len; i++)
		if (b[i] != 0)
			return false;
	return true;
}

/* Is copying onto the targets held off?  Once a commit made the target the
 * volume in use, nothing may be copied onto it from the source any more;
 * while a commit's barrier is up nothing is copied either (the commit
 * copies what is dirty itself), and a barrier left by a commit that died
 * stays up until the next command finishes or rolls that commit back: a
 * commit recorded but not yet announced has made the target the volume in
 * use already.  Read under mu, like every access of the state from this
 * process's threads.  Caller does not hold mu. */
static bool held_off(struct engine *e)
{
	bool c;

	pthread_mutex_lock(&e->mu);
	c = atomic_load_explicit(&e->ctl.hdr->state, memory_order_acquire) == SESS_COMMITTED ||
	    atomic_load_explicit(&e->ctl.hdr->barrier_pid, memory_order_acquire) != 0;
	pthread_mutex_unlock(&e->mu);
	return c;
}

static bool may_cut(void *arg)
{
	return !held_off(arg);
}

/* A file target longer than its source (the source shrank): cut it back. */
static int trim_target(struct engine *e, struct pair_rt *p, int lock_fd)
{
	int rc;

	if (!p->src_file || !p->tgt_file)
		return 0;
	rc = tgt_trim(lock_fd, false, p->src_buf_fd, p->tgt_buf_fd, may_cut, e);
	if (rc < 0)
		log_err("target %s: cannot cut it back to its source's length: %s", p->sp->target,
			strerror(-rc));
	return rc < 0 ? rc : 0;
}

/* Read len bytes of pair p's source at off through fd.  Returns the bytes
 * read (fewer at the end of a file source) or -errno (reported; a block
 * device that ends early is -EIO). */
static ssize_t source_read(struct pair_rt *p, int fd, void *buf, uint64_t len, uint64_t off)
{
	ssize_t n = io_pread_full(fd, buf, (size_t)len, off);

	if (n < 0) {
		log_err("source %s: read of %llu bytes at offset %llu failed: %s", p->sp->source,
			(unsigned long long)len, (unsigned long long)off, strerror((int)-n));
		return n;
	}
	if ((uint64_t)n < len && !p->src_file) {
		log_err("source %s ends at %llu, before its size at setup (%llu)", p->sp->source,
			(unsigned long long)(off + (uint64_t)n), (unsigned long long)p->sp->size);
		return -EIO;
	}
	return n;
}

/*
 * Copy one region.  Returns the data bytes written (0 for a hole or a
 * skipped region) or -errno (reported).  *clean tells whether the region can
 * be recorded clean.  lock_fd is the thread's own open of the attach lock
 * file: the target lock is held shared around the copy.  The caller waited
 * for the bandwidth limit (rate_wait) before the region is claimed, so that
 * writes to it are never held back by the limit.
 *
 * A file source may end inside the region or before it (it shrank, or the
 * region is in the room reserved for growth): the bytes past its end read
 * as zeros on the target, which a file target holds by not reaching that
 * far (it is cut back to the source's length after the copy).
 */
static ssize_t copy_region(struct engine *e, const struct work *w, uint64_t r, void *buf,
			   int lock_fd, bool *clean)
{
	bool hole = false, aligned;
	uint32_t pi = w->pair;
	struct pair_rt *p = &e->pairs[pi];
	uint64_t off = r << e->shift, len = region_len(e, p, r), got;
	ssize_t n;
	int rc;

	*clean = false;
	rc = ctl_lock_length(lock_fd, F_RDLCK);
	if (rc < 0) {
		log_err("cannot take the target lock of %s: %s", e->dir, strerror(-rc));
		return rc;
	}
	if (held_off(e) || ctl_copy_begin(&e->ctl, pi, r, COPY_WAIT_US) == -EBUSY) {
		(void)ctl_lock_length(lock_fd, F_UNLCK);
		return 0; /* writes did not drain: stays dirty, retried later */
	}
	aligned = (len % DIRECT_ALIGN) == 0;
	if (w->near_hole)
		n = source_read(p, p->src_nora_fd, buf, len, off);
	else
		n = source_read(p, aligned ? p->src_fd : p->src_buf_fd, buf, len, off);
	if (n < 0) {
		rc = (int)n;
		goto fail;
	}
	got = (uint64_t)n;
	memset((char *)buf + got, 0, (size_t)(len - got));
	CRASH_POINT("copier.source-read.after");
	/* a file target stays sparse where the source reads as zeros */
	if (p->tgt_file && all_zero(buf, (size_t)len))
		hole = true;
	if (hole) {
		rc = tgt_zero(p->tgt_buf_fd, true, off, len, buf, e->region_size);
		if (rc == 0)
			rc = tgt_extend(p->tgt_buf_fd, off + got);
		n = 0;
	} else {
		/* past the source's end a file target is not written (it
		 * follows the source's length); a block device gets zeros */
		uint64_t put = p->tgt_file ? got : len;

		aligned = (put % DIRECT_ALIGN) == 0;
		rc = io_pwrite_full(aligned ? p->tgt_fd : p->tgt_buf_fd, buf, (size_t)put, off);
		if (rc == 0 && put < len)
			rc = tgt_zero(p->tgt_buf_fd, p->tgt_file, off + put, len - put, buf, e->region_size);
		n = (ssize_t)got;
		/* Start writeback now (no wait), so that the checkpoint's flush
		 * finds less left to write.  It does not bound what a kill
		 * loses: a disk may take writes far faster than it flushes
		 * them, and the flush can still overrun its interval; the hold
		 * (hold_at, engine_run) keeps a kill's loss to one interval of
		 * copying (I6). */
		if (rc == 0 && !(e->o->direct && aligned))
			(void)sync_file_range(p->tgt_buf_fd, (off64_t)off, (off64_t)put,
					      SYNC_FILE_RANGE_WRITE);
		if (rc == 0)
			CRASH_POINT("copier.target-write.after");
	}
	if (rc < 0) {
		log_err("target %s: write of %llu bytes at offset %llu failed: %s", p->sp->target,
			(unsigned long long)len, (unsigned long long)off, strerror(-rc));
		goto fail;
	}
	(void)ctl_lock_length(lock_fd, F_UNLCK);
	*clean = ctl_copy_end(&e->ctl, pi, r) == 1;
	/* the source ended in or before the region: a longer file target is
	 * cut back (a region it cuts had changed on the source: it is dirty) */
	if (got < len && (rc = trim_target(e, p, lock_fd)) < 0)
		return rc;
	return n;

fail:
	(void)ctl_lock_length(lock_fd, F_UNLCK);
	ctl_copy_end(&e->ctl, pi, r);
	ctl_mark_dirty(&e->ctl, pi, r); /* never counted clean */
	return rc;
}

/*
 * Copy a bulk run of w->n neighbouring full-size regions (run_regions) with
 * one read, and one write per stretch of regions alike.  Each region keeps
 * what copy_region gives a single one: its own claim (I4), so a region whose
 * writes did not drain is skipped and stays dirty; its own hole check; its
 * own result, clean[i] and data bytes[i].  Returns 0, 1 when the source
 * ended inside the run (nothing is recorded: copy it region by region), or
 * -errno (reported; every claimed region is kept dirty).  The caller waited
 * for the bandwidth limit, as for copy_region.
 */
static int copy_run(struct engine *e, const struct work *w, char *buf, int lock_fd, bool *clean,
		    uint64_t *bytes)
{
	struct pair_rt *p = &e->pairs[w->pair];
	uint64_t rs = e->region_size, off = w->first << e->shift, len = w->n * rs, i, j;
	bool claimed[RUN_REGIONS], zero[RUN_REGIONS], wrote = false;
	ssize_t n;
	int rc;

	for (i = 0; i < w->n; i++) {
		clean[i] = claimed[i] = false;
		bytes[i] = 0;
	}
	rc = ctl_lock_length(lock_fd, F_RDLCK);
	if (rc < 0) {
		log_err("cannot take the target lock of %s: %s", e->dir, strerror(-rc));
		return rc;
	}
	if (held_off(e)) {
		(void)ctl_lock_length(lock_fd, F_UNLCK);
		return 0; /* as copy_region: nothing clean, retried later */
	}
	for (i = 0; i < w->n; i++)
		claimed[i] = ctl_copy_begin(&e->ctl, w->pair, w->first + i, COPY_WAIT_US) == 0;
	n = source_read(p, w->near_hole ? p->src_nora_fd : p->src_fd, buf, len, off);
	if (n < 0 || (uint64_t)n < len) {
		/* a file that shrank: copy_region handles its end */
		rc = n < 0 ? (int)n : 1;
		goto fail;
	}
	CRASH_POINT("copier.source-read.after");
	for (i = 0; i < w->n; i++)
		zero[i] = p->tgt_file && all_zero(buf + i * rs, (size_t)rs);
	for (i = 0; rc == 0 && i < w->n; i = j) {
		uint64_t o = off + i * rs, l;

		for (j = i + 1; j < w->n && claimed[j] == claimed[i] && zero[j] == zero[i]; j++)
			;
		if (!claimed[i])
			continue;
		l = (j - i) * rs;
		if (zero[i]) {
			/* a file target stays sparse where the source reads as zeros */
			rc = tgt_zero(p->tgt_buf_fd, true, o, l, buf + i * rs, (size_t)l);
			if (rc == 0)
				rc = tgt_extend(p->tgt_buf_fd, o + l);
			continue;
		}
		rc = io_pwrite_full(p->tgt_fd, buf + i * rs, (size_t)l, o);
		if (rc == 0 && !e->o->direct)
			(void)sync_file_range(p->tgt_buf_fd, (off64_t)o, (off64_t)l,
					      SYNC_FILE_RANGE_WRITE); /* as copy_region */
		for (uint64_t k = i; rc == 0 && k < j; k++)
			bytes[k] = rs;
		wrote = wrote || rc == 0;
	}
	if (rc < 0) {
		log_err("target %s: write of %llu bytes at offset %llu failed: %s", p->sp->target,
			(unsigned long long)len, (unsigned long long)off, strerror(-rc));
		goto fail;
	}
	if (wrote)
		CRASH_POINT("copier.target-write.after");
	(void)ctl_lock_length(lock_fd, F_UNLCK);
	for (i = 0; i < w->n; i++)
		if (claimed[i])
			clean[i] = ctl_copy_end(&e->ctl, w->pair, w->first + i) == 1;
	return 0;

fail:
	(void)ctl_lock_length(lock_fd, F_UNLCK);
	for (i = 0; i < w->n; i++) {
		if (!claimed[i])
			continue;
		ctl_copy_end(&e->ctl, w->pair, w->first + i);
		ctl_mark_dirty(&e->ctl, w->pair, w->first + i); /* never counted clean */
	}
	return rc;
}

static bool ahead_push(struct pair_rt *p, uint64_t r, uint64_t bytes)
{
	if (vec_push(&p->ahead, r) < 0)
		return false;
	if (vec_push(&p->ahead, bytes) < 0) {
		p->ahead.n--;
		return false;
	}
	return true;
}

/* Count the bulk regions of p done below cursor into np; keep the others.
 * Caller holds mu. */
static void counted_ahead(struct pair_rt *p, uint64_t cursor, struct state_progress *np)
{
	size_t k = 0;

	for (size_t i = 0; i + 1 < p->ahead.n; i += 2) {
		uint64_t r = p->ahead.v[i], bytes = p->ahead.v[i + 1];

		if (r < cursor) {
			np->bytes_copied += bytes;
			if (r < p->recopy_limit)
				np->bytes_recopied += bytes;
		} else {
			p->ahead.v[k++] = r;
			p->ahead.v[k++] = bytes;
		}
	}
	p->ahead.n = k;
}

/* Regions [from, from + n) of p ended clean: whatever happened last to a
 * region decides its pending change (none to add; a durably dirty one is
 * to be deleted).  Caller holds mu. */
static void pending_clean(struct pair_rt *p, uint64_t from, uint64_t n)
{
	region_map_clear_range(&p->pend_add, from, n);
	if (p->ddirty.count == 0)
		return;
	if (n == 1) { /* the bulk copy's case: no scan past the region */
		if (region_map_test(&p->ddirty, from))
			region_map_set(&p->pend_del, from);
		return;
	}
	for (uint64_t d = region_map_next_set(&p->ddirty, from); d < from + n;
	     d = region_map_next_set(&p->ddirty, d + 1))
		region_map_set(&p->pend_del, d);
}

/* Account a finished region. Caller holds mu. */
static void complete_region(struct engine *e, const struct work *w, uint64_t r, bool clean,
			    uint64_t bytes)
{
	struct pair_rt *p = &e->pairs[w->pair];

	region_map_clear(&p->busy, r);
	if (w->kind != WORK_DIRTY)
		region_map_set(&p->done, r);
	/* a bulk region's bytes are counted once the cursor passes it
	 * (counted_ahead); out of memory, now */
	if (w->kind == WORK_DIRTY || bytes == 0 || !ahead_push(p, r, bytes)) {
		p->pend_copied += bytes;
		if (w->kind != WORK_DIRTY && r < p->recopy_limit)
			p->pend_recopied += bytes;
	}
	/* A write may have dirtied the region again after its copy ended (its
	 * intent may even be ingested already): then it is not clean. */
	if (clean && (atomic_load_explicit(ctl_region(&e->ctl, w->pair, r), memory_order_acquire) &
		      CTL_DIRTY))
		clean = false;
	/* Whatever happened last to a region decides its pending change; a
	 * region kept dirty is added before the cursor can pass it (same
	 * checkpoint transaction). */
	if (clean) {
		pending_clean(p, r, 1);
	} else {
		region_map_clear(&p->pend_del, r);
		if (!region_map_test(&p->ddirty, r))
			region_map_set(&p->pend_add, r);
	}
}

/* Account n bulk regions from first whose copies ended clean, as
 * complete_region does one (a region a write dirtied again since is not
 * clean), in range operations: a hole of a TiB is a million regions.
 * Caller holds mu. */
static void complete_clean(struct engine *e, const struct work *w, uint64_t first, uint64_t n)
{
	struct pair_rt *p = &e->pairs[w->pair];
	_Atomic uint32_t *words = ctl_region(&e->ctl, w->pair, 0);
	uint64_t r = first, end = first + n, from;

	while (r < end) {
		for (from = r; r < end; r++)
			if (atomic_load_explicit(&words[r], memory_order_acquire) & CTL_DIRTY)
				break;
		region_map_clear_range(&p->busy, from, r - from);
		region_map_set_range(&p->done, from, r - from);
		pending_clean(p, from, r - from);
		if (r < end)
			complete_region(e, w, r++, false, 0);
	}
}

/*
 * A run of regions wholly in a hole of the source: claim each (I4), punch
 * or zero the whole target range at once, release each.  A region whose
 * writes did not drain stays dirty; zeroing its target range is harmless
 * because a dirty region's target content does not count.
 */
static void copy_holes(struct engine *e, const struct work *w, void *buf, int lock_fd)
{
	struct pair_rt *p = &e->pairs[w->pair];
	uint64_t off = w->first << e->shift;
	uint64_t end = (w->first + w->n) << e->shift;
	struct stat sb;
	bool past_end = false;
	int rc;

	if (end > p->cap)
		end = p->cap;
	item_begins(e, w);
	rc = ctl_lock_length(lock_fd, F_RDLCK);
	if (rc < 0 || held_off(e)) {
		if (rc < 0)
			log_err("cannot take the target lock of %s: %s", e->dir, strerror(-rc));
		else
			(void)ctl_lock_length(lock_fd, F_UNLCK);
		pthread_mutex_lock(&e->mu);
		region_map_clear_range(&p->busy, w->first, w->n);
		if (rc < 0)
			fail_locked(e, rc);
		pthread_mutex_unlock(&e->mu);
		return;
	}
	for (uint64_t r = w->first; r < w->first + w->n; r++)
		ctl_copy_begin(&e->ctl, w->pair, r, COPY_WAIT_US);
	rc = tgt_zero(p->tgt_buf_fd, p->tgt_file, off, end - off, buf, e->region_size);
	/* a file target as long as the source where the run lies below its end */
	if (rc == 0 && p->tgt_file) {
		if (fstat(p->src_buf_fd, &sb) < 0)
			rc = -errno;
		else if ((uint64_t)sb.st_size < end)
			past_end = true;
		if (rc == 0 && (uint64_t)sb.st_size > off)
			rc = tgt_extend(p->tgt_buf_fd, past_end ? (uint64_t)sb.st_size : end);
	}
	(void)ctl_lock_length(lock_fd, F_UNLCK);
	if (rc < 0)
		log_err("target %s: zeroing %llu bytes at offset %llu failed: %s", p->sp->target,
			(unsigned long long)(end - off), (unsigned long long)off, strerror(-rc));
	pthread_mutex_lock(&e->mu);
	for (uint64_t r = w->first, from = r; r < w->first + w->n; r++) {
		bool clean = ctl_copy_end(&e->ctl, w->pair, r) == 1;

		if (rc < 0) {
			ctl_mark_dirty(&e->ctl, w->pair, r);
			region_map_clear(&p->busy, r);
			continue;
		}
		/* the clean ones are accounted a stretch at a time */
		if (clean && r + 1 < w->first + w->n)
			continue;
		complete_clean(e, w, from, r - from + clean);
		if (!clean)
			complete_region(e, w, r, false, 0);
		from = r + 1;
	}
	if (rc < 0)
		fail_locked(e, rc);
	pthread_mutex_unlock(&e->mu);
	if (rc == 0 && past_end && (rc = trim_target(e, p, lock_fd)) < 0) {
		pthread_mutex_lock(&e->mu);
		fail_locked(e, rc);
		pthread_mutex_unlock(&e->mu);
	}
}

/* Item w is given up from region r on (the copier stops before their copy,
 * or a copy failed): those regions are not done, so the cursor stays below
 * them and the next run copies them (a dirty one stays dirty).  Caller
 * holds mu. */
static void abandon(struct engine *e, const struct work *w, uint64_t r)
{
	region_map_clear_range(&e->pairs[w->pair].busy, r, w->first + w->n - r);
}

/* Copy the regions of item w one by one (copy_region) and account them. */
static void copy_each(struct engine *e, const struct work *w, void *buf, int lock_fd)
{
	for (uint64_t r = w->first; r < w->first + w->n; r++) {
		bool clean;
		ssize_t n;

		if (!rate_wait(e, w, region_len(e, &e->pairs[w->pair], r))) {
			pthread_mutex_lock(&e->mu);
			abandon(e, w, r);
			pthread_mutex_unlock(&e->mu);
			return;
		}
		n = copy_region(e, w, r, buf, lock_fd, &clean);
		pthread_mutex_lock(&e->mu);
		if (n < 0) {
			abandon(e, w, r);
			fail_locked(e, (int)n);
			pthread_mutex_unlock(&e->mu);
			return;
		}
		complete_region(e, w, r, clean, (uint64_t)n);
		pthread_mutex_unlock(&e->mu);
		atomic_fetch_add_explicit(&e->bytes_done, (uint64_t)n, memory_order_relaxed);
	}
}

/* Copy bulk item w as one run (copy_run) and account it.  False when it is
 * to be copied region by region instead. */
static bool run_done(struct engine *e, const struct work *w, void *buf, int lock_fd)
{
	bool clean[RUN_REGIONS];
	uint64_t bytes[RUN_REGIONS], sum = 0;
	int rc;

	if (!rate_wait(e, w, w->n * e->region_size)) {
		pthread_mutex_lock(&e->mu);
		abandon(e, w, w->first);
		pthread_mutex_unlock(&e->mu);
		return true;
	}
	rc = copy_run(e, w, buf, lock_fd, clean, bytes);
	if (rc == 1)
		return false;
	pthread_mutex_lock(&e->mu);
	if (rc < 0) {
		abandon(e, w, w->first);
		fail_locked(e, rc);
	}
	for (uint64_t i = 0; rc == 0 && i < w->n; i++) {
		complete_region(e, w, w->first + i, clean[i], bytes[i]);
		sum += bytes[i];
	}
	pthread_mutex_unlock(&e->mu);
	atomic_fetch_add_explicit(&e->bytes_done, sum, memory_order_relaxed);
	return true;
}

static void *worker(void *arg)
{
	struct engine *e = arg;
	void *buf = NULL;
	int lock_fd = ctl_lock_open(e->dir); /* this thread's own: see copy_region */
	double *begun = &e->begun[atomic_fetch_add(&e->nbegun, 1)];
	bool idle = false;

	if (lock_fd < 0 ||
	    posix_memalign(&buf, DIRECT_ALIGN, e->region_size * e->run_max) != 0) {
		if (lock_fd < 0)
			report_errno("cannot open the lock file of", e->dir, lock_fd);
		else
			close(lock_fd);
		pthread_mutex_lock(&e->mu);
		fail_locked(e, lock_fd < 0 ? lock_fd : -ENOMEM);
		pthread_mutex_unlock(&e->mu);
		return NULL;
	}
	pthread_mutex_lock(&e->mu);
	while (!e->stop) {
		struct work w;

		if (!next_work(e, &w)) {
			struct timespec ts;

			/* newly idle, maybe the last: let main look (once; main
			 * looks every 50 ms by itself too) */
			if (!idle)
				pthread_cond_signal(&e->main_cv);
			idle = true;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 50 * 1000 * 1000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&e->work_cv, &e->mu, &ts);
			continue;
		}
		idle = false;
		e->active++;
		w.begun = begun;
		pthread_mutex_unlock(&e->mu);
		if (w.kind == WORK_HOLE)
			copy_holes(e, &w, buf, lock_fd);
		else if (w.n == 1 || !run_done(e, &w, buf, lock_fd))
			copy_each(e, &w, buf, lock_fd);
		pthread_mutex_lock(&e->mu);
		*begun = 0;
		e->active--;
		pthread_cond_signal(&e->main_cv);
	}
	pthread_mutex_unlock(&e->mu);
	free(buf);
	close(lock_fd);
	return NULL;
}

/* What one checkpoint commits. */
struct ckpt {
	struct engine *e;
	struct state_progress prog[SESS_MAX_PAIRS];
	struct u64vec add[SESS_MAX_PAIRS], del[SESS_MAX_PAIRS];
	uint64_t mirror_errors[SESS_MAX_PAIRS]; /* the block's, at the snapshot */
	uint32_t state_seen; /* session state read inside the transaction */
};

/* Record the shim's count of failed target writes of pair i when the
 * block's is ahead of the durable one (status: mirror_errors; the block is
 * rebuilt from durable state). */
static int mirror_errors_record(struct state *st, DB_TXN *txn, uint32_t i, uint64_t n)
{
	uint64_t rec;
	int rc = state_mirror_errors_get(st, txn, i, &rec);

	if (rc < 0 || n <= rec)
		return rc;
	return state_mirror_errors_put(st, txn, i, n);
}

static int ckpt_txn(struct state *st, DB_TXN *txn, void *arg)
{
	struct ckpt *c = arg;
	struct sess s;
	int rc;

	rc = ingest_record(&c->e->in, st, txn);
	if (rc < 0)
		return rc;
	rc = state_sess_get(st, txn, &s);
	if (rc < 0)
		return rc;
	c->state_seen = s.state;
	sess_release(&s);
	for (uint32_t i = 0; i < c->e->npairs; i++) {
		rc = state_progress_put(st, txn, i, &c->prog[i]);
		for (size_t k = 0; rc == 0 && k < c->del[i].n; k++)
			rc = state_dirty_del(st, txn, i, c->del[i].v[k]);
		for (size_t k = 0; rc == 0 && k < c->add[i].n; k++)
			rc = state_dirty_add(st, txn, i, c->add[i].v[k]);
		if (rc == 0)
			rc = mirror_errors_record(st, txn, i, c->mirror_errors[i]);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Bound the log a restart replays and let old log files go: a Berkeley DB
 * checkpoint once STATE_LOG_TRIM_KBYTES were logged since the last one.
 * Progress is durable without it (a failure costs a longer recovery), so a
 * failure is reported once, not fatal. */
static void trim_log(struct engine *e)
{
	int rc = state_log_checkpoint(e->st, STATE_LOG_TRIM_KBYTES);

	if (rc < 0 && !e->trim_failed)
		report_errno("cannot checkpoint the state log of", e->dir, rc);
	e->trim_failed = rc < 0;
}

/*
 * Give back the space of dirty-log records this copier has recorded
 * (ingest_trim), holding the target lock shared, and never while a commit
 * is under way or done.  A commit takes that lock exclusive before it loads
 * the durable offsets it reads the segments from, and records its own
 * offsets (which may be lower than this copier's) only together with the
 * committed state, after which nothing reads the log.  So no reader ever
 * starts inside a punched part.  Each guard is enough alone: a commit
 * raises its barrier (held_off) before it takes the lock, and this copier
 * punches only up to offsets it committed before it looked at the
 * barrier, so a commit that loads the offsets after that finds them at or
 * past the punch.  Caller does not hold mu.
 */
static void trim_segments(struct engine *e)
{
	if (!ingest_trim_due(&e->in) || ctl_lock_length_try(e->ctl_lock, F_RDLCK) < 0)
		return; /* nothing due, or a commit holds the lock: next time */
	if (!held_off(e))
		ingest_trim(&e->in);
	(void)ctl_lock_length(e->ctl_lock, F_UNLCK);
}

/* Move the pending bits of map m into vector v and clear them. */
static int drain_map(struct region_map *m, struct u64vec *v)
{
	for (uint64_t r = region_map_next_set(m, 0); r < m->nbits; r = region_map_next_set(m, r + 1)) {
		int rc = vec_push(v, r);
		if (rc < 0)
			return rc;
	}
	region_map_clear_range(m, 0, m->nbits);
	return 0;
}

/*
 * A region named by the dirty log: dirty in the control block (so it is
 * copied again), and in the durable dirty set by the checkpoint that records
 * the log offset past its record.  A region the bulk pass has not finished
 * needs no entry: the cursor covers it, and a copy in progress sees DIRTY
 * and does not count the region clean (complete_region).  Caller holds mu.
 */
static void ingest_mark(struct engine *e, uint32_t pi, uint64_t r)
{
	struct pair_rt *p = &e->pairs[pi];

	ctl_mark_dirty(&e->ctl, pi, r);
	region_map_clear(&p->pend_del, r);
	if (region_map_test(&p->done, r) && !region_map_test(&p->ddirty, r))
		region_map_set(&p->pend_add, r);
}

/* Apply the records (and lost pairs) of the batch just collected. */
static void ingest_apply(struct engine *e)
{
	for (size_t k = 0; k < e->in.nrecs; k++) {
		const struct ingest_rec *ir = &e->in.recs[k];

		for (uint64_t r = ir->first; r < ir->first + ir->count; r++)
			ingest_mark(e, ir->pair, r);
	}
	for (uint32_t i = 0; i < e->npairs; i++) {
		if (!(e->in.lost_new & (UINT64_C(1) << i)))
			continue;
		log_warn("pair %u: a writer lost track of its writes (full disk for the dirty "
			 "log); the whole pair is copied again", i);
		for (uint64_t r = 0; r < e->pairs[i].nregions; r++)
			ingest_mark(e, i, r);
	}
	e->ingested = e->in.nrecs != 0 || e->in.lost_new != 0;
}

/*
 * The sizes of file sources, at each checkpoint: one past its capacity
 * stops the migration (recorded; the copier exits); a file target longer
 * than its source is cut back.  0 or -errno (reported).
 */
static int check_sizes(struct engine *e)
{
	for (uint32_t i = 0; i < e->npairs; i++) {
		struct pair_rt *p = &e->pairs[i];
		struct stat sb;
		int rc;

		if (!p->src_file)
			continue;
		if (fstat(p->src_buf_fd, &sb) < 0) {
			rc = -errno;
			report_errno("cannot read the size of source", p->sp->source, rc);
			return rc;
		}
		if ((uint64_t)sb.st_size > p->cap)
			return session_stop(e->dir, e->st, e->s, i, (uint64_t)sb.st_size);
		rc = trim_target(e, p, e->ctl_lock);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/*
 * A source or target replaced (another file renamed over it, or removed
 * and made again) or removed, or a block device resized: programs that
 * open its path now get a volume this session neither tracks nor copies
 * (or only in part), and a commit refuses the session.  Copying on would
 * report progress on a volume no longer in use by that name, and a
 * --follow copier would run for ever.  True (said) when one is.
 */
static bool volume_gone(struct engine *e)
{
	for (uint32_t i = 0; i < e->npairs; i++) {
		const struct sess_pair *sp = e->pairs[i].sp;
		const char *role = "source", *path = sp->source;
		enum vol_change ch;
		uint64_t size = 0;

		ch = session_volume_changed(sp->source, &sp->source_id, sp->size, &size);
		if (ch == VOL_SAME) {
			role = "target";
			path = sp->target;
			ch = session_volume_changed(sp->target, &sp->target_id, sp->target_size,
						    &size);
		}
		if (ch == VOL_GONE)
			log_err("%s %s is no longer the volume it was at setup (replaced or "
				"removed): the copier stops; the migration goes on only once the "
				"path names that volume again (else volmig abort -s %s)", role, path,
				e->dir);
		else if (ch == VOL_RESIZED)
			log_err("%s %s changed size since setup: %llu bytes, was %llu: the copier "
				"stops; the migration goes on only once it has that size again "
				"(else volmig abort -s %s)", role, path, (unsigned long long)size,
				(unsigned long long)(path == sp->source ? sp->size : sp->target_size),
				e->dir);
		if (ch != VOL_SAME)
			return true;
	}
	return false;
}

/*
 * One checkpoint (I3): ingest the dirty log, snapshot, flush targets,
 * commit.  On failure the snapshot is put back so nothing is lost from
 * memory either.  Returns 0 or -errno (reported).
 *
 * *since is when the copying this checkpoint leaves unrecorded began: the
 * snapshot's time, or earlier when bulk regions done past a cursor wait
 * for one still in flight (a cursor records only what is done below it),
 * the start of the oldest item in flight.  Copying begun after *since
 * is lost to a kill until the next checkpoint commits (the hold, I6).
 */
static int checkpoint(struct engine *e, double *since)
{
	struct ckpt c = { .e = e };
	bool changed = false, ahead = false;
	int rc;

	/* A state directory removed (maybe set up again for a new session)
	 * under this copier: going on, it would copy for a session that is
	 * gone, onto targets the new one may use, outside its control block's
	 * region protocol (I4), and read its dirty log. */
	if (session_lock_lost(e->o->lock_fd, e->dir)) {
		log_err("state directory %s was removed or set up again while this copier ran: "
			"its session is gone, and the copier stops", e->dir);
		pthread_mutex_lock(&e->mu);
		fail_locked(e, -ESTALE);
		pthread_mutex_unlock(&e->mu);
		return -ESTALE;
	}

	/* writers that died mid-write hold in-flight counts: take them back */
	e->repaired = ctl_repair_dead(&e->ctl) != 0;
	/* after the repair: cutting a target back may wait for a commit */
	rc = check_sizes(e);
	if (rc < 0) {
		pthread_mutex_lock(&e->mu);
		fail_locked(e, rc);
		pthread_mutex_unlock(&e->mu);
		return rc;
	}
	rc = ingest_collect(&e->in, e->st);
	if (rc < 0) {
		report_errno("cannot read the dirty log in", e->dir, rc);
		ingest_undo(&e->in);
		pthread_mutex_lock(&e->mu);
		fail_locked(e, rc);
		pthread_mutex_unlock(&e->mu);
		return rc;
	}
	pthread_mutex_lock(&e->mu);
	ingest_apply(e);
	if (e->ingested)
		changed = true;
	for (uint32_t i = 0; i < e->npairs; i++) {
		struct pair_rt *p = &e->pairs[i];
		struct state_progress *np = &c.prog[i];

		*np = p->prog;
		c.mirror_errors[i] = atomic_load_explicit(&e->ctl.hdr->mirror_errors[i],
							  memory_order_relaxed);
		np->cursor = region_map_next_clear(&p->done, p->prog.cursor);
		np->bytes_copied += p->pend_copied;
		np->bytes_recopied += p->pend_recopied;
		counted_ahead(p, np->cursor, np);
		if ((rc = drain_map(&p->pend_add, &c.add[i])) < 0 ||
		    (rc = drain_map(&p->pend_del, &c.del[i])) < 0)
			break;
		for (size_t k = 0; k < c.add[i].n; k++)
			region_map_set(&p->ddirty, c.add[i].v[k]);
		for (size_t k = 0; k < c.del[i].n; k++)
			region_map_clear(&p->ddirty, c.del[i].v[k]);
		if (np->cursor != p->prog.cursor || p->pend_copied || c.add[i].n || c.del[i].n ||
		    p->prog_dirty)
			changed = true;
		/* every region below the cursor is done (engine_run) */
		if (p->done.count > np->cursor)
			ahead = true;
		p->pend_copied = 0;
		p->pend_recopied = 0;
	}
	*since = mono_now();
	for (unsigned k = 0; ahead && k < e->o->threads; k++)
		if (e->begun[k] > 0 && e->begun[k] < *since)
			*since = e->begun[k];
	pthread_mutex_unlock(&e->mu);
	if (rc < 0) {
		log_err("checkpoint: %s", strerror(-rc));
		goto out;
	}
	if (changed) {
		/* I3: the target data of every region recorded below is flushed
		 * before the transaction that records it */
		for (uint32_t i = 0; i < e->npairs && rc == 0; i++) {
			rc = io_fdatasync(e->pairs[i].tgt_fd);
			if (rc == 0 && e->pairs[i].tgt_buf_fd != e->pairs[i].tgt_fd)
				rc = io_fdatasync(e->pairs[i].tgt_buf_fd);
			if (rc < 0)
				log_err("target %s: flush failed: %s", e->pairs[i].sp->target,
					strerror(-rc));
		}
	}
	if (rc == 0 && changed)
		CRASH_POINT("copier.target-flush.after");
	if (rc == 0) {
		CRASH_POINT("copier.checkpoint-commit.before");
		rc = state_txn(e->st, ckpt_txn, &c);
		if (rc == 0)
			CRASH_POINT("copier.checkpoint-commit.after");
		if (rc < 0)
			report_errno("cannot record progress in", e->dir, rc);
	}
	if (rc == 0) {
		for (uint32_t i = 0; i < e->npairs; i++) {
			e->pairs[i].prog = c.prog[i];
			e->pairs[i].prog_dirty = false;
		}
		e->state_seen = c.state_seen;
		ingest_done(&e->in);
		if (c.state_seen == SESS_ABORTED)
			rc = -ECANCELED;
		trim_log(e);
		trim_segments(e);
	} else {
		ingest_undo(&e->in);
	}
out:
	if (rc < 0 && rc != -ECANCELED) {
		/* nothing was recorded: the regions stay uncounted (redo, never skip) */
		pthread_mutex_lock(&e->mu);
		for (uint32_t i = 0; i < e->npairs; i++) {
			for (size_t k = 0; k < c.add[i].n; k++)
				region_map_set(&e->pairs[i].pend_add, c.add[i].v[k]);
			for (size_t k = 0; k < c.del[i].n; k++)
				if (!region_map_test(&e->pairs[i].pend_add, c.del[i].v[k]))
					region_map_set(&e->pairs[i].pend_del, c.del[i].v[k]);
		}
		fail_locked(e, rc);
		pthread_mutex_unlock(&e->mu);
	}
	/* after the record (what was copied stays counted), and not once the
	 * session is committed: its old sources may then go */
	if (rc == 0 && c.state_seen != SESS_COMMITTED && volume_gone(e)) {
		rc = -ESTALE;
		pthread_mutex_lock(&e->mu);
		fail_locked(e, rc);
		pthread_mutex_unlock(&e->mu);
	}
	for (uint32_t i = 0; i < e->npairs; i++) {
		free(c.add[i].v);
		free(c.del[i].v);
	}
	return rc;
}

/* True when the bulk pass is over (every bulk region copied or kept dirty;
 * copies of dirty regions may still run), and with clean also nothing is
 * dirty or being copied: caller holds mu. */
static bool finished_locked(struct engine *e, bool clean)
{
	if (clean && e->active != 0)
		return false;
	for (uint32_t i = 0; i < e->npairs; i++) {
		struct pair_rt *p = &e->pairs[i];

		if (p->bulk_next < p->nregions || p->done.count < p->nregions)
			return false;
		if (clean && (p->busy.count != 0 || ctl_dirty_count(&e->ctl, i) != 0))
			return false;
	}
	return true;
}

/* The ETA counts the regions done from now on, at the rate they are done
 * from now on: at the start, and after a pause. */
static void eta_restart(struct engine *e, double now)
{
	uint64_t done = 0;

	pthread_mutex_lock(&e->mu);
	for (uint32_t i = 0; i < e->npairs; i++)
		done += e->pairs[i].done.count;
	e->prog_done0 = done;
	e->prog_t0 = now;
	pthread_mutex_unlock(&e->mu);
}

static void progress_line(struct engine *e, bool tty, bool final, double *last_t,
			  uint64_t *last_bytes)
{
	uint64_t done = 0, bytes = atomic_load_explicit(&e->bytes_done, memory_order_relaxed);
	double now = mono_now(), rate, pct, dt = now - *last_t;
	char eta[32], rs[32], total[32];

	pthread_mutex_lock(&e->mu);
	for (uint32_t i = 0; i < e->npairs; i++)
		done += e->pairs[i].done.count;
	pthread_mutex_unlock(&e->mu);
	pct = e->regions_total ? 100.0 * (double)done / (double)e->regions_total : 100.0;
	rate = dt > 0 ? (double)(bytes - *last_bytes) / dt : 0;
	/* by regions done since the start, not bytes: the regions in a sparse
	 * source's holes take no bytes and next to no time */
	if (paused(e) && done < e->regions_total) {
		snprintf(eta, sizeof(eta), "paused");
	} else if (done > e->prog_done0 && done < e->regions_total) {
		double left = (now - e->prog_t0) * (double)(e->regions_total - done) /
			      (double)(done - e->prog_done0);

		snprintf(eta, sizeof(eta), "%d:%02d", (int)(left / 60), (int)left % 60);
	} else {
		snprintf(eta, sizeof(eta), "--:--");
	}
	size_format((uint64_t)rate, rs, sizeof(rs));
	size_format(bytes, total, sizeof(total));
	if (tty)
		fprintf(stderr, "\r\033[Kvolmig: %5.1f%%  %s/s  %s written  ETA %s%s", pct, rs,
			total, eta, final ? "\n" : "");
	else
		fprintf(stderr, "volmig: progress %.1f%% %s/s %s written ETA %s\n", pct, rs,
			total, eta);
	fflush(stderr);
	*last_t = now;
	*last_bytes = bytes;
}

static int open_volume(const char *path, int flags, bool direct, int *fd, int *buf_fd)
{
	*fd = *buf_fd = -1;
	*buf_fd = open(path, flags | O_CLOEXEC);
	if (*buf_fd < 0)
		return -errno;
	if (!direct) {
		*fd = *buf_fd;
		return 0;
	}
	*fd = open(path, flags | O_CLOEXEC | O_DIRECT);
	if (*fd < 0) {
		int rc = -errno;
		close(*buf_fd);
		*buf_fd = -1;
		return rc;
	}
	return 0;
}

/* A second open of the file source open as fd (the same file, whatever
 * became of its path) whose reads bring in only what was asked for
 * (NORA_SPAN); -1 if it cannot be had, and reads take the usual one. */
static int open_nora(int src_fd)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", src_fd);
	fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd >= 0 && posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM) != 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static void close_volume(int fd, int buf_fd)
{
	if (fd >= 0 && fd != buf_fd)
		close(fd);
	if (buf_fd >= 0)
		close(buf_fd);
}

/* Load each pair's durable progress, dirty set and recopy hint. */
struct load_arg {
	struct engine *e;
	uint64_t dirty_total;
};

static int load_txn(struct state *st, DB_TXN *txn, void *arg)
{
	struct load_arg *a = arg;
	struct engine *e = a->e;
	int rc;

	a->dirty_total = 0;
	for (uint32_t i = 0; i < e->npairs; i++) {
		struct pair_rt *p = &e->pairs[i];
		uint64_t beyond = 0;

		rc = state_progress_get(st, txn, i, &p->prog);
		if (rc < 0)
			return rc;
		region_map_clear_range(&p->ddirty, 0, p->nregions);
		rc = state_dirty_load(st, txn, i, &p->ddirty, &beyond);
		if (rc < 0)
			return rc;
		a->dirty_total += p->ddirty.count;
	}
	return 0;
}

static void hint_load(struct engine *e)
{
	char path[4200];
	uint8_t b[8 + 8 * SESS_MAX_PAIRS] = { 0 };
	uint64_t id = 0;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/progress.hint", e->dir);
	e->hint_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (e->hint_fd < 0)
		return;
	n = pread(e->hint_fd, b, sizeof(b), 0);
	for (int i = 0; i < 8; i++)
		id |= (uint64_t)b[i] << (8 * i);
	if (n >= 8 && id == e->s->id) {
		for (uint32_t p = 0; p < e->npairs && (size_t)n >= 16 + 8 * (size_t)p; p++) {
			uint64_t hwm = 0;
			for (int i = 0; i < 8; i++)
				hwm |= (uint64_t)b[8 + 8 * p + (unsigned)i] << (8 * i);
			if (hwm > e->pairs[p].nregions)
				hwm = e->pairs[p].nregions;
			if (hwm > e->pairs[p].prog.hwm) {
				e->pairs[p].prog.hwm = hwm;
				e->pairs[p].prog_dirty = true;
			}
		}
	}
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(e->s->id >> (8 * i));
	for (uint32_t p = 0; p < e->npairs; p++) {
		uint64_t hwm = e->pairs[p].prog.hwm;
		for (int i = 0; i < 8; i++)
			b[8 + 8 * p + (unsigned)i] = (uint8_t)(hwm >> (8 * i));
	}
	if (pwrite(e->hint_fd, b, 8 + 8 * (size_t)e->npairs, 0) < 0) {
		/* a statistic only */
	}
}

struct start_arg {
	bool resume;
};

static int start_txn(struct state *st, DB_TXN *txn, void *arg)
{
	struct start_arg *a = arg;
	struct state_totals t;
	struct sess s;
	int rc;

	rc = state_sess_get(st, txn, &s);
	if (rc < 0)
		return rc;
	if (s.state == SESS_SETUP)
		s.state = SESS_COPYING;
	rc = state_sess_put(st, txn, &s);
	sess_release(&s);
	if (rc < 0 || !a->resume)
		return rc;
	rc = state_totals_get(st, txn, &t);
	if (rc < 0)
		return rc;
	t.resumes++;
	return state_totals_put(st, txn, &t);
}

static int synced_txn(struct state *st, DB_TXN *txn, void *arg)
{
	struct engine *e = arg;
	struct sess s;
	int rc;

	(void)e;
	rc = state_sess_get(st, txn, &s);
	if (rc < 0)
		return rc;
	if (s.state == SESS_COPYING)
		s.state = SESS_SYNCED;
	rc = state_sess_put(st, txn, &s);
	sess_release(&s);
	return rc;
}

static void engine_release(struct engine *e)
{
	free(e->begun);
	if (e->pairs != NULL) {
		for (uint32_t i = 0; i < e->npairs; i++) {
			struct pair_rt *p = &e->pairs[i];

			close_volume(p->src_fd, p->src_buf_fd);
			close_volume(p->tgt_fd, p->tgt_buf_fd);
			if (p->src_nora_fd >= 0)
				close(p->src_nora_fd);
			region_map_release(&p->done);
			region_map_release(&p->busy);
			region_map_release(&p->pend_add);
			region_map_release(&p->pend_del);
			region_map_release(&p->ddirty);
			free(p->ahead.v);
		}
		free(e->pairs);
	}
	if (e->ctl.hdr != NULL) {
		int32_t me = (int32_t)getpid();
		atomic_compare_exchange_strong(&e->ctl.hdr->copier_pid, &me, 0);
		ctl_detach(&e->ctl);
	}
	ingest_release(&e->in);
	if (e->hint_fd >= 0)
		close(e->hint_fd);
	if (e->ctl_lock >= 0)
		close(e->ctl_lock);
	pthread_mutex_destroy(&e->mu);
	pthread_mutex_destroy(&e->rate_mu);
	pthread_cond_destroy(&e->work_cv);
	pthread_cond_destroy(&e->main_cv);
}

static int control_load_txn(struct state *st, DB_TXN *txn, void *arg)
{
	return state_control_get(st, txn, arg);
}

static int engine_prepare(struct engine *e)
{
	struct state_control k;
	struct load_arg la = { .e = e };
	int rc;

	e->pairs = calloc(e->npairs, sizeof(*e->pairs));
	if (e->pairs == NULL)
		return -ENOMEM;
	e->in.dir = e->dir;
	e->in.session_id = e->s->id;
	e->in.npairs = e->npairs;
	for (uint32_t i = 0; i < e->npairs; i++) {
		struct pair_rt *p = &e->pairs[i];

		p->src_fd = p->src_buf_fd = p->tgt_fd = p->tgt_buf_fd = p->src_nora_fd = -1;
	}
	for (uint32_t i = 0; i < e->npairs; i++) {
		struct pair_rt *p = &e->pairs[i];

		p->sp = &e->s->pairs[i];
		p->src_file = p->sp->source_id.kind == SESS_KIND_FILE;
		p->tgt_file = p->sp->target_id.kind == SESS_KIND_FILE;
		p->cap = sess_capacity(p->sp);
		p->nregions = region_count(p->cap, e->shift);
		e->regions_total += p->nregions;
		e->in.nregions[i] = p->nregions;
		rc = open_volume(p->sp->source, O_RDONLY, e->o->direct, &p->src_fd, &p->src_buf_fd);
		if (rc < 0) {
			report_errno("cannot open source", p->sp->source, rc);
			return rc;
		}
		rc = open_volume(p->sp->target, O_RDWR, e->o->direct, &p->tgt_fd, &p->tgt_buf_fd);
		if (rc < 0) {
			report_errno("cannot open target", p->sp->target, rc);
			return rc;
		}
		if (p->src_file && !e->o->direct)
			p->src_nora_fd = open_nora(p->src_buf_fd);
		if ((rc = region_map_init(&p->done, p->nregions)) < 0 ||
		    (rc = region_map_init(&p->busy, p->nregions)) < 0 ||
		    (rc = region_map_init(&p->pend_add, p->nregions)) < 0 ||
		    (rc = region_map_init(&p->pend_del, p->nregions)) < 0 ||
		    (rc = region_map_init(&p->ddirty, p->nregions)) < 0) {
			log_err("out of memory for the region maps");
			return rc;
		}
	}
	rc = state_txn(e->st, load_txn, &la);
	if (rc < 0) {
		report_errno("cannot read progress from", e->dir, rc);
		return rc;
	}
	hint_load(e);
	for (uint32_t i = 0; i < e->npairs; i++) {
		struct pair_rt *p = &e->pairs[i];

		if (p->prog.cursor > p->nregions) {
			log_err("state directory %s is corrupted: pair %u cursor past its end", e->dir, i);
			return -EBADMSG;
		}
		region_map_set_range(&p->done, 0, p->prog.cursor);
		p->bulk_next = p->prog.cursor;
		p->recopy_limit = p->hint_end = p->prog.hwm;
		/* the durable dirty set is already durable: nothing to add */
	}
	rc = session_ctl_open(e->dir, e->st, e->s, true, &e->ctl, &e->ctl_lock);
	if (rc == 0)
		atomic_store_explicit(&e->ctl.hdr->copier_pid, (int32_t)getpid(), memory_order_release);
	if (rc < 0) {
		report_errno("cannot set up the control block for", e->dir, rc);
		return rc;
	}
	/* pause and throttle outlive the copier that saw them */
	rc = state_txn(e->st, control_load_txn, &k);
	if (rc < 0) {
		report_errno("cannot read the controls of", e->dir, rc);
		return rc;
	}
	atomic_store_explicit(&e->ctl.hdr->paused, k.paused, memory_order_release);
	atomic_store_explicit(&e->ctl.hdr->rate, k.rate, memory_order_release);
	if (k.paused)
		log_info("copying is paused (volmig resume goes on)");
	return 0;
}

/* Regions per bulk I/O at most.  Direct I/O is as fast as the bytes in
 * flight.  Buffered I/O has the kernel's readahead, except near a hole
 * (NORA_SPAN), where it copies runs too (docs/decisions.md, Copying). */
static uint64_t run_regions(const struct engine *e)
{
	uint64_t bytes = DIRECT_RUN_ALL / e->o->threads, n;

	if (!e->o->direct)
		bytes = BUFFERED_RUN_BYTES;
	else if (bytes > DIRECT_RUN_BYTES)
		bytes = DIRECT_RUN_BYTES;
	n = bytes >> e->shift;
	return n < 1 ? 1 : n > RUN_REGIONS ? RUN_REGIONS : n;
}

int engine_run(const char *dir, struct state *st, struct sess *s, const struct engine_opts *o)
{
	struct engine e = {
		.dir = dir, .st = st, .s = s, .o = o, .hint_fd = -1, .ctl_lock = -1,
		.shift = s->region_shift, .region_size = UINT64_C(1) << s->region_shift,
		.npairs = s->npairs,
	};
	struct sigaction sa = { .sa_handler = on_signal }, old_int, old_term, old_hup;
	pthread_t *threads = NULL;
	unsigned nthreads = 0;
	bool tty = isatty(STDERR_FILENO), resume;
	double last_ckpt, last_dur = 0, last_prog, rate_t, interval = (double)o->checkpoint_us / 1e6;
	double hold_from;
	uint64_t rate_b = 0;
	unsigned passes_at_sync = 0;
	bool backlog = true; /* the first checkpoint reads what was logged before */
	bool look_again = false; /* skip the next wait (see the main loop) */
	bool was_paused;         /* the pause the copier last said it saw */
	int rc;

	e.run_max = run_regions(&e);
	pthread_mutex_init(&e.mu, NULL);
	pthread_mutex_init(&e.rate_mu, NULL);
	pthread_cond_init(&e.work_cv, NULL);
	pthread_cond_init(&e.main_cv, NULL);
	rc = engine_prepare(&e);
	if (rc < 0)
		goto out;

	resume = s->state == SESS_COPYING;
	{
		struct start_arg sa_ = { .resume = resume };
		CRASH_POINT("state.copying.before");
		rc = state_txn(st, start_txn, &sa_);
		if (rc == 0)
			CRASH_POINT("state.copying.after");
	}
	if (rc < 0) {
		report_errno("cannot record the start of copying in", dir, rc);
		goto out;
	}
	if (s->state == SESS_SETUP)
		s->state = SESS_COPYING;
	atomic_store_explicit(&e.ctl.hdr->state, s->state, memory_order_release);
	if (resume) {
		uint64_t done = 0;
		for (uint32_t i = 0; i < e.npairs; i++)
			done += e.pairs[i].prog.cursor;
		log_info("resuming at %.1f%% (%llu of %llu regions already copied)",
			 e.regions_total ? 100.0 * (double)done / (double)e.regions_total : 100.0,
			 (unsigned long long)done, (unsigned long long)e.regions_total);
	}

	engine_signal = 0;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	/* a hangup (the terminal or the ssh session gone) stops as a SIGTERM
	 * does, progress saved; not under nohup, which ignores it */
	sigaction(SIGHUP, NULL, &old_hup);
	if (old_hup.sa_handler != SIG_IGN)
		sigaction(SIGHUP, &sa, NULL);

	/* before the workers start: the copy's start is its first snapshot */
	hold_from = mono_now();
	e.hold_at = hold_from + interval;
	threads = calloc(o->threads, sizeof(*threads));
	e.begun = calloc(o->threads, sizeof(*e.begun));
	if (threads == NULL || e.begun == NULL) {
		rc = -ENOMEM;
		goto out_sig;
	}
	for (; nthreads < o->threads; nthreads++) {
		rc = -pthread_create(&threads[nthreads], NULL, worker, &e);
		if (rc < 0) {
			report_errno("cannot start copier threads for", dir, rc);
			pthread_mutex_lock(&e.mu);
			fail_locked(&e, rc);
			pthread_mutex_unlock(&e.mu);
			break;
		}
	}

	last_ckpt = last_prog = rate_t = mono_now();
	eta_restart(&e, last_ckpt);
	was_paused = paused(&e); /* said so already (engine_load) */
	rc = 0;
	for (;;) {
		struct timespec ts;
		bool finished, drained, stop;
		double now, since;

		/* Copying the last committed checkpoint left unrecorded (since
		 * hold_from) is at risk until the next checkpoint commits; taking
		 * each snapshot early by the last checkpoint's duration keeps
		 * that window within one interval (I6: a kill redoes at most one
		 * interval of copying), and the hold (hold_at) from being reached
		 * in a steady copy.  While one I/O stalls the cursor, hold_from
		 * stays put: then a checkpoint every quarter interval, which
		 * moves the hold on soon after the stall ends. */
		double due = hold_from + interval - last_dur, wait;

		if (due < last_ckpt + interval / 4)
			due = last_ckpt + interval / 4;
		wait = due - mono_now();

		if (wait > 0.05)
			wait = 0.05;
		if (wait < 0.001)
			wait = 0.001;
		pthread_mutex_lock(&e.mu);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += (long)(wait * 1e9);
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		/* right after the synced transition, look again at once: the
		 * idle workers have signalled already, and a sync with nothing
		 * left to drain would wait out the timeout for nothing */
		if (!look_again)
			pthread_cond_timedwait(&e.main_cv, &e.mu, &ts);
		look_again = false;
		if (engine_signal && !e.stop) {
			e.stop = true;
			pthread_cond_broadcast(&e.work_cv);
		}
		/* Synced once the bulk pass is over: from then on writes are
		 * mirrored, so they no longer make the target fall behind, and
		 * the regions still dirty are copied while mirroring.  Without
		 * --follow, sync exits once nothing is dirty, or once a whole
		 * pass over the dirty regions was made while mirrored (a program
		 * that keeps writing keeps regions dirty, but mirrored). */
		finished = finished_locked(&e, false);
		/* Only a sync that ends looks for drained: it reads every
		 * region word, and its checkpoint is the last one.  A --follow
		 * copier, which runs on through the mirrored phase, would
		 * otherwise commit a checkpoint at every wake (each a flush of
		 * the state log, tens a second) and scan a million words each
		 * time on a TiB of 1 MiB regions; its checkpoints come at the
		 * interval. */
		drained = !o->follow && finished && s->state != SESS_COPYING && e.active == 0 &&
			  (e.mirror_passes > passes_at_sync || finished_locked(&e, true));
		stop = e.stop;
		pthread_mutex_unlock(&e.mu);

		now = mono_now();
		if (paused(&e) != was_paused) {
			was_paused = !was_paused;
			if (was_paused) {
				log_info("copying is paused (volmig resume goes on)");
			} else {
				log_info("copying resumed");
				eta_restart(&e, now); /* the pause copied nothing */
			}
		}
		/* a checkpoint records the finished bulk pass before synced is,
		 * and the last work before an exit */
		if (stop || (finished && (s->state == SESS_COPYING || drained)) || now >= due) {
			if (stop) {
				/* let workers finish their items before the last checkpoint */
				pthread_mutex_lock(&e.mu);
				while (e.active > 0)
					pthread_cond_wait(&e.main_cv, &e.mu);
				pthread_mutex_unlock(&e.mu);
			}
			since = now;
			rc = checkpoint(&e, &since);
			last_dur = mono_now() - now;
			if (last_dur > interval)
				last_dur = interval;
			last_ckpt = now;
			/* I6: copying begun after the last committed checkpoint
			 * left it unrecorded (since) is at risk.  Once that is an
			 * interval old, workers take no new item until the next
			 * checkpoint commits: a flush that overruns its interval
			 * (a target slower than the page cache the copy fills)
			 * would otherwise let copying run on unrecorded, and so
			 * would a bulk I/O that stalls while the others go on
			 * (what they copy past it is recorded only once it is
			 * done). */
			pthread_mutex_lock(&e.mu);
			if (rc == 0) {
				hold_from = since < now ? since : now;
				e.hold_at = hold_from + interval;
			}
			pthread_cond_broadcast(&e.work_cv);
			pthread_mutex_unlock(&e.mu);
			if (rc < 0 || stop)
				break;
			if (e.state_seen == SESS_COMMITTED)
				break; /* --follow ends with the session */
			if ((e.ingested && backlog) || e.in.lost_new != 0 || e.repaired) {
				/* The log named regions written before this copier
				 * started (only the log knows them), or a writer lost
				 * track of a pair, or regions a dead writer held could
				 * not be copied: a whole new pass copies them before a
				 * sync without --follow may end.  Records of writes
				 * made while it runs do not restart the pass: each
				 * such write marked its region dirty in the control
				 * block before it was issued (and, once synced, was
				 * mirrored); restarting on them kept a sync from ever
				 * ending while a program kept writing. */
				drained = false;
				pthread_mutex_lock(&e.mu);
				passes_at_sync = e.mirror_passes;
				for (uint32_t i = 0; i < e.npairs; i++)
					e.pairs[i].dirty_scan = 0;
				pthread_mutex_unlock(&e.mu);
			}
			backlog = false; /* only the first checkpoint reads it */
		}
		if (drained && !o->follow)
			break;
		if (finished && s->state == SESS_COPYING) {
			CRASH_POINT("state.synced.before");
			rc = state_txn(st, synced_txn, &e);
			if (rc == 0)
				CRASH_POINT("state.synced.after");
			if (rc < 0) {
				report_errno("cannot record the synced state in", dir, rc);
				break;
			}
			s->state = SESS_SYNCED;
			pthread_mutex_lock(&e.mu);
			atomic_store_explicit(&e.ctl.hdr->state, s->state, memory_order_release);
			atomic_fetch_add_explicit(&e.ctl.hdr->epoch, 1, memory_order_acq_rel);
			passes_at_sync = e.mirror_passes;
			/* the pass that may end a sync starts now, not before the
			 * writes it must see were mirrored */
			for (uint32_t i = 0; i < e.npairs; i++)
				e.pairs[i].dirty_scan = 0;
			pthread_mutex_unlock(&e.mu);
			if (tty || o->progress_every > 0)
				progress_line(&e, tty, true, &rate_t, &rate_b);
			look_again = true;
		}
		if (tty ? now - last_prog >= 0.5 : (o->progress_every > 0 && now - last_prog >= o->progress_every)) {
			progress_line(&e, tty, false, &rate_t, &rate_b);
			last_prog = now;
		}
	}

	pthread_mutex_lock(&e.mu);
	e.stop = true;
	pthread_cond_broadcast(&e.work_cv);
	pthread_mutex_unlock(&e.mu);
	for (unsigned i = 0; i < nthreads; i++)
		pthread_join(threads[i], NULL);
	free(threads);
	if (tty)
		fputc('\n', stderr);
	if (rc == 0 && e.error < 0)
		rc = e.error;
	if (rc == 0 && engine_signal) {
		rc = -EINTR;
		log_info("interrupted by signal %d; progress is saved, run volmig sync to resume",
			 (int)engine_signal);
	}
	if (rc == -ECANCELED)
		log_err("session %s was aborted; the copier stops", dir);
	/* the state as the last checkpoint read it: a switch or a commit made
	 * since this copier started (sync names it as it ends) */
	if (rc == 0 && s->state != SESS_COPYING &&
	    (e.state_seen == SESS_SYNCED || e.state_seen == SESS_SWITCHED ||
	     e.state_seen == SESS_COMMITTED))
		s->state = e.state_seen;
out_sig:
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	sigaction(SIGHUP, &old_hup, NULL);
out:
	engine_release(&e);
	return rc;
}
