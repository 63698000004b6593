/*
 * aio: Linux native AIO.  io_submit tracks each IOCB_CMD_PWRITE/PWRITEV to a
 * source from submission to completion: the write is counted in flight (and
 * its intent made durable) before the kernel sees the iocb, and the count is
 * dropped when the completion is reaped by io_getevents/io_pgetevents, when
 * io_cancel succeeds, or when io_destroy (which waits for every iocb)
 * returns.  Completions reaped straight from the ring in user space are not
 * seen: their regions stay dirty until the process exits (safe, not live).
 *
 * In the mirrored states a completed write is written to the target when it
 * is reaped, before the program sees the completion.  In the committed state
 * (and for reads, in the switched state where the regions are clean) the
 * iocb's fd is pointed at the target while in flight and given back when it
 * is reaped.
 *
 * libaio's functions return -errno; the raw system calls (through
 * syscall()) return -1 with errno.  Both go through here.
 */
#include <errno.h>
#include <linux/aio_abi.h>
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

struct aio_entry {
	_Atomic uintptr_t key; /* the iocb; 0 empty, TOMB removed */
	aio_context_t ctx;
	struct shim_track t;   /* a tracked write (t.active) */
	int orig_fd;           /* >= 0: aio_fildes was redirected to the target */
};

static struct aio_entry table[AIO_TABLE];
static _Atomic unsigned live; /* entries in use, to skip work when none */

static size_t hash(uintptr_t k)
{
	return (size_t)((k >> 3) * UINT64_C(0x9e3779b97f4a7c15) >> 48) % AIO_TABLE;
}

static int insert(const struct iocb *cb, aio_context_t ctx, const struct shim_track *t,
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
				atomic_fetch_add_explicit(&live, 1, memory_order_relaxed);
				atomic_store_explicit(&table[h].key, k, memory_order_release);
				return 0;
			}
		}
	}
	return -EAGAIN;
}

/*
 * A tracked write to a source completed with ev->res: in the mirrored and
 * committed states the target gets the same bytes (the iocb's buffers are
 * still the program's until it is told); a failure the program must see
 * becomes the completion's result.
 */
static void mirror_completed(struct iocb *cb, const struct shim_track *t, struct io_event *ev)
{
	struct iovec one;
	const struct iovec *iov = &one;
	int cnt = 1, rc;

	if (ev == NULL || ev->res <= 0 || t->hold >= 0 || shim_write_route() == SHIM_SOURCE)
		return;
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

/* Remove cb if tracked: mirror it (with its completion ev, if reaped), end
 * its write, or give back its fd. */
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

			atomic_store_explicit(&table[h].key, TOMB, memory_order_release);
			atomic_fetch_sub_explicit(&live, 1, memory_order_relaxed);
			if (orig >= 0)
				((struct iocb *)(uintptr_t)cb)->aio_fildes = (uint32_t)orig;
			if (t.active) {
				mirror_completed((struct iocb *)(uintptr_t)cb, &t, ev);
				shim_track_end(&t);
			}
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
	int tfd = shim_target_fd(pair, fd), rc;

	if (tfd < 0)
		return tfd;
	rc = insert(cb, ctx, &none, fd);
	if (rc == 0)
		cb->aio_fildes = (uint32_t)tfd;
	return rc;
}

/*
 * Track the writes among ios[0..nr), submit them with `submit`, untrack the
 * ones the kernel did not take.  Returns what submit returned, or -errno
 * (as a libaio-style result) when an intent could not be made durable.
 */
static long tracked_submit(aio_context_t ctx, long nr, struct iocb **ios,
			   long (*submit)(aio_context_t, long, struct iocb **))
{
	long r, taken;
	int rc = 0;
	long i;

	for (i = 0; i < nr; i++) {
		struct shim_track t = { .hold = -1 };
		struct iocb_info info;
		int fd, pair;

		/* reads and writes the kernel will refuse are left to it */
		if (ios[i] == NULL || iocb_classify(ios[i], &info) < 0 || info.kind == IOCB_OTHER)
			continue;
		fd = info.fd;
		if (info.kind == IOCB_READ) {
			/* a read: to the target when the state says so */
			pair = shim_source_pair(fd);
			if (pair < 0 || !shim_read_from_target(pair, info.off, info.len))
				continue;
			if ((rc = redirect(ios[i], ctx, pair, fd)) < 0)
				break;
			continue;
		}
		pair = shim_fd_tracked(fd);
		if (pair == -1)
			continue;
		if (pair >= 0 && shim_write_route() == SHIM_TARGET) {
			/* committed: the target only */
			if ((rc = redirect(ios[i], ctx, pair, fd)) < 0)
				break;
			continue;
		}
		if (pair >= 0 && shim_write_route() == SHIM_MIRROR)
			shim_barrier_wait();
		rc = pair >= 0 ? shim_track_pair(pair, info.off, info.len, &t)
			       : shim_track_begin(fd, info.off, info.len, &t);
		if (rc == 0 && t.active && (rc = insert(ios[i], ctx, &t, -1)) < 0)
			shim_track_end(&t);
		if (rc < 0)
			break;
	}
	if (rc < 0) {
		for (long j = 0; j < i; j++)
			if (ios[j] != NULL && is_rw(ios[j]))
				finish(ios[j]);
		return rc;
	}
	r = submit(ctx, nr, ios);
	taken = r < 0 ? 0 : r;
	for (long j = taken; j < nr; j++)
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
 * must be tracked once, not again inside.  Only the aio system calls look
 * at it, so a signal handler meanwhile is still tracked, unless it calls
 * those.
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
