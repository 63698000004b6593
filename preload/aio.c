/*
 * aio: Linux native AIO.  io_submit tracks each IOCB_CMD_PWRITE/PWRITEV to a
 * source from submission to completion: the write is counted in flight (and
 * its intent made durable) before the kernel sees the iocb, and the count is
 * dropped when the completion is reaped by io_getevents/io_pgetevents, when
 * io_cancel succeeds, or when io_destroy (which waits for every iocb)
 * returns.  Completions reaped straight from the ring in user space are not
 * seen: their regions stay dirty until the process exits (safe, not live).
 *
 * In the mirrored states each write also goes to the target, as dm-raid1
 * does: a write submitted in a mirrored state has a twin, the same write to
 * the target, submitted right after it through the shim's own context, and
 * its completion is not given to the program before the twin completed
 * (io_getevents waits for it: the program's buffers stay the program's
 * until it is told).  A twin that did not write every byte the source got
 * is written again synchronously (shim_mirror: its failure handling), and
 * so is a write that completes mirrored without a twin (submitted before
 * the state changed, or when the twins' context was full or refused).  The
 * write stays counted in flight until its twin ended, so no copy of its
 * regions runs meanwhile.  In the committed state
 * (and for reads, in the switched state where the regions are clean) the
 * iocb's fd is pointed at the target while in flight and given back when it
 * is reaped.
 *
 * libaio's functions return -errno; the raw system calls (through
 * syscall()) return -1 with errno.  Both go through here.
 */
#include <errno.h>
#include <linux/aio_abi.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "iocb.h"
#include "shim.h"

#define AIO_TABLE 65536 /* iocbs to sources in flight per process, at most */
#define TOMB ((uintptr_t)1)
#define TWIN_SLOTS 256  /* twins in flight per process, at most (io_setup) */
#define TWIN_BATCH 64   /* twins submitted or reaped per system call */

/* A write's twin (its copy to the target). */
enum twin_state {
	TWIN_NONE = 0,    /* none: mirrored synchronously at reap if due */
	TWIN_ARMED = 1,   /* being submitted by io_submit's thread */
	TWIN_PENDING = 2, /* submitted */
	TWIN_DONE = 3,    /* completed with twin_res */
};

struct aio_entry {
	_Atomic uintptr_t key; /* the iocb; 0 empty, TOMB removed */
	aio_context_t ctx;
	struct shim_track t;   /* a tracked write (t.active) */
	int orig_fd;           /* >= 0: aio_fildes was redirected to the target */
	_Atomic int twin;      /* enum twin_state */
	int64_t twin_res;      /* written before twin turns TWIN_DONE (release) */
};

static struct aio_entry table[AIO_TABLE];
static _Atomic unsigned live; /* entries in use, to skip work when none */

/*
 * The twins' context, made on first use.  One thread at a time reaps it
 * (polling), posting each result in its entry; the others wait on cv, as
 * do waiters for an ARMED twin (its submitter broadcasts once it knows).
 */
static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	aio_context_t ctx;
	bool refused;  /* io_setup failed: no twins (aio-max-nr reached) */
	bool polling;  /* a thread is in io_getevents on ctx */
	unsigned waiters;
} M = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, false, false, 0 };

static size_t hash(uintptr_t k)
{
	return (size_t)((k >> 3) * UINT64_C(0x9e3779b97f4a7c15) >> 48) % AIO_TABLE;
}

/* Enter cb; its table index, or -EAGAIN when the table is full. */
static long insert(const struct iocb *cb, aio_context_t ctx, const struct shim_track *t,
		   int orig_fd)
{
	uintptr_t k = (uintptr_t)cb;

	for (size_t i = 0, h = hash(k); i < AIO_TABLE; i++, h = (h + 1) % AIO_TABLE) {
		uintptr_t cur = atomic_load_explicit(&table[h].key, memory_order_relaxed);

		while (cur == 0 || cur == TOMB) {
			if (atomic_compare_exchange_weak_explicit(&table[h].key, &cur, TOMB + 1,
								  memory_order_acquire,
								  memory_order_relaxed)) {
				/* claimed (key TOMB+1 is never an iocb): fill, then publish */
				table[h].ctx = ctx;
				table[h].t = *t;
				table[h].orig_fd = orig_fd;
				atomic_store_explicit(&table[h].twin, TWIN_NONE,
						      memory_order_relaxed);
				atomic_fetch_add_explicit(&live, 1, memory_order_relaxed);
				atomic_store_explicit(&table[h].key, k, memory_order_release);
				return (long)h;
			}
		}
	}
	return -EAGAIN;
}

/* Reap the twins' context once (blocking for at least one twin: the caller
 * has one pending) and post the results.  Caller is the polling thread. */
static void twins_reap(void)
{
	struct io_event evs[TWIN_BATCH];
	long r;

	do
		r = REAL(syscall)(SYS_io_getevents, M.ctx, 1L, (long)TWIN_BATCH, evs, NULL);
	while (r < 0 && errno == EINTR);
	for (long i = 0; i < r; i++) {
		struct aio_entry *en = &table[evs[i].data];

		en->twin_res = evs[i].res;
		/* pairs with the acquire load in twin_wait */
		atomic_store_explicit(&en->twin, TWIN_DONE, memory_order_release);
	}
	if (r < 0) {
		/* cannot happen on a live context: do not spin on it */
		struct timespec ts = { .tv_nsec = 1000000 };

		nanosleep(&ts, NULL);
	}
}

/* Wait until en's twin is NONE or DONE; returns which.  Not a cancellation
 * point: a thread cancelled here would leave M.mu locked, and the wait is
 * bounded by the twin's I/O. */
static int twin_wait(struct aio_entry *en)
{
	int tw = atomic_load_explicit(&en->twin, memory_order_acquire), cs;

	if (tw == TWIN_NONE || tw == TWIN_DONE)
		return tw;
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cs);
	pthread_mutex_lock(&M.mu);
	for (;;) {
		tw = atomic_load_explicit(&en->twin, memory_order_acquire);
		if (tw == TWIN_NONE || tw == TWIN_DONE)
			break;
		if (tw == TWIN_ARMED || M.polling) {
			M.waiters++;
			pthread_cond_wait(&M.cv, &M.mu);
			M.waiters--;
			continue;
		}
		M.polling = true;
		pthread_mutex_unlock(&M.mu);
		twins_reap();
		pthread_mutex_lock(&M.mu);
		M.polling = false;
		pthread_cond_broadcast(&M.cv);
	}
	pthread_mutex_unlock(&M.mu);
	pthread_setcancelstate(cs, NULL);
	return tw;
}

/* The twins' context, or 0 when there is none to be had. */
static aio_context_t twins_ctx(void)
{
	aio_context_t ctx;

	pthread_mutex_lock(&M.mu);
	if (M.ctx == 0 && !M.refused) {
		ctx = 0;
		if (REAL(syscall)(SYS_io_setup, (long)TWIN_SLOTS, &ctx) == 0)
			M.ctx = ctx;
		else
			M.refused = true;
	}
	ctx = M.ctx;
	pthread_mutex_unlock(&M.mu);
	return ctx;
}

/*
 * Submit the twins of ios[idx[0..n)] (entries ent[]; each ARMED): the same
 * write to the target (with its RWF_DSYNC/RWF_SYNC, never its eventfd).
 * Each twin ends PENDING (or already DONE), or NONE when it could not be
 * submitted.
 */
static void twins_submit(struct iocb **ios, const long *idx, const long *ent, int n)
{
	struct iocb tcb[TWIN_BATCH], *tp[TWIN_BATCH];
	aio_context_t ctx = twins_ctx();
	int saved = errno, k = 0;
	long sub = 0;

	shim_busy++;
	for (int i = 0; i < n; i++) {
		const struct iocb *cb = ios[idx[i]];
		struct aio_entry *en = &table[ent[i]];
		int tfd = ctx != 0 ? shim_target_fd((int)en->t.pair, (int)cb->aio_fildes) : -1;

		if (tfd < 0) {
			atomic_store_explicit(&en->twin, TWIN_NONE, memory_order_release);
			continue;
		}
		memset(&tcb[k], 0, sizeof(tcb[k]));
		tcb[k].aio_data = (uint64_t)ent[i];
		tcb[k].aio_lio_opcode = cb->aio_lio_opcode;
		tcb[k].aio_rw_flags = cb->aio_rw_flags & (RWF_DSYNC | RWF_SYNC);
		tcb[k].aio_fildes = (uint32_t)tfd;
		tcb[k].aio_buf = cb->aio_buf;
		tcb[k].aio_nbytes = cb->aio_nbytes;
		tcb[k].aio_offset = cb->aio_offset;
		tp[k] = &tcb[k];
		k++;
	}
	if (k > 0) {
		sub = REAL(syscall)(SYS_io_submit, ctx, (long)k, tp);
		if (sub < 0)
			sub = 0;
	}
	for (int i = 0; i < k; i++) {
		struct aio_entry *en = &table[tcb[i].aio_data];
		int armed = TWIN_ARMED;

		if (i >= sub)
			atomic_store_explicit(&en->twin, TWIN_NONE, memory_order_release);
		else /* unless its completion was posted already */
			atomic_compare_exchange_strong_explicit(&en->twin, &armed, TWIN_PENDING,
								memory_order_acq_rel,
								memory_order_acquire);
	}
	pthread_mutex_lock(&M.mu);
	if (M.waiters > 0)
		pthread_cond_broadcast(&M.cv);
	pthread_mutex_unlock(&M.mu);
	shim_busy--;
	errno = saved;
}

/*
 * A tracked write to a source completed with ev->res: the target gets the
 * same bytes (the iocb's buffers are still the program's until it is told);
 * a failure the program must see becomes the completion's result.
 */
static void mirror_completed(struct iocb *cb, const struct shim_track *t, struct io_event *ev)
{
	struct iovec one;
	const struct iovec *iov = &one;
	int cnt = 1, rc;

	if (cb->aio_lio_opcode == IOCB_CMD_PWRITEV) {
		iov = (const struct iovec *)(uintptr_t)cb->aio_buf;
		cnt = (int)cb->aio_nbytes;
	} else {
		one.iov_base = (void *)(uintptr_t)cb->aio_buf;
		one.iov_len = cb->aio_nbytes;
	}
	rc = shim_mirror((int)t->pair, (int)cb->aio_fildes, iov, cnt, (uint64_t)cb->aio_offset,
			 (uint64_t)ev->res, (int)cb->aio_rw_flags);
	if (rc < 0)
		ev->res = rc;
}

/* Remove cb if tracked (after its twin, if any, ended): give back its fd,
 * and for a tracked write, mirror it synchronously when its completion ev
 * is due a target write its twin did not make, then end it. */
static void finish_ev(const void *cb, struct io_event *ev)
{
	uintptr_t k = (uintptr_t)cb;

	if (atomic_load_explicit(&live, memory_order_relaxed) == 0 || k <= TOMB + 1)
		return;
	for (size_t i = 0, h = hash(k); i < AIO_TABLE; i++, h = (h + 1) % AIO_TABLE) {
		uintptr_t cur = atomic_load_explicit(&table[h].key, memory_order_acquire);

		if (cur == 0)
			return;
		if (cur == k) {
			struct shim_track t = table[h].t;
			int orig = table[h].orig_fd;
			int tw = twin_wait(&table[h]);
			int64_t tres = table[h].twin_res;

			atomic_store_explicit(&table[h].key, TOMB, memory_order_release);
			atomic_fetch_sub_explicit(&live, 1, memory_order_relaxed);
			if (orig >= 0)
				((struct iocb *)(uintptr_t)cb)->aio_fildes = (uint32_t)orig;
			if (!t.active)
				return;
			if (ev != NULL && ev->res > 0 && t.hold < 0 &&
			    shim_write_route() != SHIM_SOURCE &&
			    !(tw == TWIN_DONE && tres >= ev->res))
				mirror_completed((struct iocb *)(uintptr_t)cb, &t, ev);
			shim_track_end(&t);
			return;
		}
	}
}

static void finish(const void *cb)
{
	finish_ev(cb, NULL);
}

static void finish_ctx(aio_context_t ctx)
{
	if (atomic_load_explicit(&live, memory_order_relaxed) == 0)
		return;
	for (size_t h = 0; h < AIO_TABLE; h++) {
		uintptr_t cur = atomic_load_explicit(&table[h].key, memory_order_acquire);

		if (cur > TOMB + 1 && table[h].ctx == ctx)
			finish((const void *)cur);
	}
}

void shim_aio_reset(void)
{
	memset(table, 0, sizeof(table));
	atomic_store(&live, 0);
	/* a child has none of its parent's contexts, and only this thread */
	pthread_mutex_init(&M.mu, NULL);
	pthread_cond_init(&M.cv, NULL);
	M.ctx = 0;
	M.refused = false;
	M.polling = false;
	M.waiters = 0;
}

static bool is_write(const struct iocb *cb)
{
	return cb->aio_lio_opcode == IOCB_CMD_PWRITE || cb->aio_lio_opcode == IOCB_CMD_PWRITEV;
}

static bool is_rw(const struct iocb *cb)
{
	return is_write(cb) || cb->aio_lio_opcode == IOCB_CMD_PREAD ||
	       cb->aio_lio_opcode == IOCB_CMD_PREADV;
}

/* Send cb, an I/O on fd (the source of pair), to the target instead; its
 * fd is given back at completion.  0 or -errno. */
static int redirect(struct iocb *cb, aio_context_t ctx, int pair, int fd)
{
	struct shim_track none = { .hold = -1 };
	int tfd = shim_target_fd(pair, fd);
	long rc;

	if (tfd < 0)
		return tfd;
	rc = insert(cb, ctx, &none, fd);
	if (rc < 0)
		return (int)rc;
	cb->aio_fildes = (uint32_t)tfd;
	return 0;
}

/*
 * Track the writes among ios[0..nr), submit them with `submit`, untrack the
 * ones the kernel did not take.  Returns what submit returned, or -errno
 * (as a libaio-style result) when an intent could not be made durable.
 */
static long tracked_submit(aio_context_t ctx, long nr, struct iocb **ios,
			   long (*submit)(aio_context_t, long, struct iocb **))
{
	long idx[TWIN_SLOTS], ent[TWIN_SLOTS]; /* the writes given twins */
	long r, taken, h;
	int rc = 0, n = 0, k;
	long i;

	for (i = 0; i < nr; i++) {
		struct shim_track t = { .hold = -1 };
		struct iocb_info info;
		enum shim_route route;
		int fd, pair;

		/* reads and writes the kernel will refuse are left to it */
		if (ios[i] == NULL || iocb_classify(ios[i], &info) < 0 || info.kind == IOCB_OTHER)
			continue;
		fd = info.fd;
		if (info.kind == IOCB_READ) {
			/* a read: to the target when the state says so */
			if (shim_reads_stay(false) || (pair = shim_source_pair(fd)) < 0 ||
			    !shim_read_from_target(pair, info.off, info.len))
				continue;
			if ((rc = redirect(ios[i], ctx, pair, fd)) < 0)
				break;
			continue;
		}
		pair = shim_fd_tracked(fd);
		if (pair == -1)
			continue;
		route = pair >= 0 ? shim_write_route() : SHIM_SOURCE;
		if (route == SHIM_TARGET) {
			/* committed: the target only */
			if ((rc = redirect(ios[i], ctx, pair, fd)) < 0)
				break;
			continue;
		}
		if (route == SHIM_MIRROR)
			shim_barrier_wait();
		rc = pair >= 0 ? shim_track_pair(pair, info.off, info.len, &t)
			       : shim_track_begin(fd, info.off, info.len, &t);
		if (rc < 0)
			break;
		if (!t.active)
			continue;
		if ((h = insert(ios[i], ctx, &t, -1)) < 0) {
			shim_track_end(&t);
			rc = (int)h;
			break;
		}
		/* mirrored: a twin, armed before the kernel sees the write so
		 * that a thread reaping it waits for the twin */
		if (t.hold < 0 && n < TWIN_SLOTS && shim_write_route() == SHIM_MIRROR) {
			atomic_store_explicit(&table[h].twin, TWIN_ARMED, memory_order_relaxed);
			idx[n] = i;
			ent[n++] = h;
		}
	}
	r = rc < 0 ? rc : submit(ctx, nr, ios);
	taken = r < 0 ? 0 : r;
	/* the writes the kernel did not take have no twin */
	for (k = 0; k < n && idx[k] < taken; k++)
		;
	for (int j = k; j < n; j++)
		atomic_store_explicit(&table[ent[j]].twin, TWIN_NONE, memory_order_relaxed);
	for (int j = 0; j < k; j += TWIN_BATCH)
		twins_submit(ios, idx + j, ent + j, k - j < TWIN_BATCH ? k - j : TWIN_BATCH);
	for (long j = taken; j < (rc < 0 ? i : nr); j++)
		if (ios[j] != NULL && is_rw(ios[j]))
			finish(ios[j]);
	return r;
}

static void reaped(struct io_event *ev, long n)
{
	for (long i = 0; i < n; i++)
		finish_ev((const void *)(uintptr_t)ev[i].obj, &ev[i]);
}

/* libaio entry points (io_context_t is a pointer the size of aio_context_t) */
int io_submit(aio_context_t ctx, long nr, struct iocb **ios);
int io_getevents(aio_context_t ctx, long min_nr, long nr, struct io_event *ev,
		 struct timespec *timeout);
int io_pgetevents(aio_context_t ctx, long min_nr, long nr, struct io_event *ev,
		  struct timespec *timeout, sigset_t *sigmask);
int io_cancel(aio_context_t ctx, struct iocb *cb, struct io_event *ev);
int io_destroy(aio_context_t ctx);

/*
 * Nonzero while this thread is in libaio's own function: libaio makes the
 * system call through syscall(2), which the shim wraps too, and the call
 * must be tracked once, not again inside (its twins armed twice, and a
 * nested submit that finishes an iocb the outer one armed would wait for
 * it forever).  Only the aio system calls look at it, so a signal handler
 * meanwhile is still tracked, unless it calls those.
 */
static __thread int in_libaio __attribute__((tls_model("initial-exec")));

#define LIBAIO(call) ({ in_libaio++; __typeof__(call) r_ = (call); in_libaio--; r_; })

static long libaio_submit(aio_context_t ctx, long nr, struct iocb **ios)
{
	return LIBAIO(REAL(io_submit)(ctx, nr, ios));
}

int io_submit(aio_context_t ctx, long nr, struct iocb **ios)
{
	int saved = errno;
	long r;

	if (shim_busy || nr <= 0 || ios == NULL)
		return REAL(io_submit)(ctx, nr, ios);
	r = tracked_submit(ctx, nr, ios, libaio_submit);
	if (r < 0 && r != -1)
		errno = saved;
	return (int)r;
}

int io_getevents(aio_context_t ctx, long min_nr, long nr, struct io_event *ev,
		 struct timespec *timeout)
{
	int r = LIBAIO(REAL(io_getevents)(ctx, min_nr, nr, ev, timeout));

	if (r > 0)
		reaped(ev, r);
	return r;
}

int io_pgetevents(aio_context_t ctx, long min_nr, long nr, struct io_event *ev,
		  struct timespec *timeout, sigset_t *sigmask)
{
	int r = LIBAIO(REAL(io_pgetevents)(ctx, min_nr, nr, ev, timeout, sigmask));

	if (r > 0)
		reaped(ev, r);
	return r;
}

int io_cancel(aio_context_t ctx, struct iocb *cb, struct io_event *ev)
{
	int r = LIBAIO(REAL(io_cancel)(ctx, cb, ev));

	if (r == 0)
		finish(cb);
	return r;
}

int io_destroy(aio_context_t ctx)
{
	int r = LIBAIO(REAL(io_destroy)(ctx));

	/* the kernel waited for every iocb of ctx: all are complete */
	finish_ctx(ctx);
	return r;
}

/* The same through syscall(2) (called by fd.c's syscall wrapper). */
static long raw_submit(aio_context_t ctx, long nr, struct iocb **ios)
{
	return REAL(syscall)(SYS_io_submit, ctx, nr, ios);
}

long shim_sys_aio(long nr, long a0, long a1, long a2, long a3, long a4, long a5);
long shim_sys_aio(long nr, long a0, long a1, long a2, long a3, long a4, long a5)
{
	long r;

	if (in_libaio)
		return REAL(syscall)(nr, a0, a1, a2, a3, a4, a5);
	switch (nr) {
	case SYS_io_submit:
		if (shim_busy || a1 <= 0 || a2 == 0)
			break;
		r = tracked_submit((aio_context_t)a0, a1, (struct iocb **)a2, raw_submit);
		if (r < -1) {
			errno = (int)-r;
			r = -1;
		}
		return r;
	case SYS_io_getevents:
	case SYS_io_pgetevents:
		r = REAL(syscall)(nr, a0, a1, a2, a3, a4, a5);
		if (r > 0)
			reaped((struct io_event *)a3, r);
		return r;
	case SYS_io_cancel:
		r = REAL(syscall)(nr, a0, a1, a2, a3, a4, a5);
		if (r == 0)
			finish((void *)a1);
		return r;
	case SYS_io_destroy:
		r = REAL(syscall)(nr, a0, a1, a2, a3, a4, a5);
		finish_ctx((aio_context_t)a0);
		return r;
	}
	return REAL(syscall)(nr, a0, a1, a2, a3, a4, a5);
}
