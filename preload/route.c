/*
 * route: where reads and writes of a source go in each state of the
 * session (see copier/trans.c for the transitions).
 *
 *   copying, aborted   the source, as the program asked (writes tracked)
 *   synced, switched   writes: the source, then the same bytes to the
 *                      target (mirroring; the region was logged dirty
 *                      first, so a failed or cut-off target write is
 *                      copied again by the copier); reads: the source when
 *                      synced, the target when switched wherever the
 *                      regions are clean (a dirty region is read from the
 *                      source, which mirroring keeps complete; so is a
 *                      read reaching past the session's capacity)
 *   committed          the target only, reads and writes
 *
 * The state is read from the control block at each operation, after the
 * write is counted in flight, so a transition reaches every process at its
 * next operation without a restart.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"
#include "region.h"
#include "sess.h"
#include "shim.h"

#define MIRROR_BUF (1u << 20)

bool shim_read_from_target(int pair, uint64_t off, uint64_t len)
{
	const struct ctl *c = shim_ctl();
	uint64_t first, n, size;
	uint32_t st;

	if (c == NULL || pair < 0)
		return false;
	st = atomic_load_explicit(&c->hdr->state, memory_order_acquire);
	if (st == SESS_COMMITTED)
		return true;
	if (st != SESS_SWITCHED || len == 0)
		return false;
	size = c->hdr->pairs[pair].size;
	if (off >= size || len > size - off)
		return false; /* past what is tracked: the source, which has it all */
	region_span(off, len, c->hdr->region_shift, &first, &n);
	for (uint64_t r = first; r < first + n; r++)
		if (atomic_load_explicit(ctl_region(c, (uint32_t)pair, r), memory_order_acquire) &
		    CTL_DIRTY)
			return false;
	return true;
}

void shim_barrier_wait(void)
{
	const struct ctl *c = shim_ctl();
	int saved = errno;

	if (c == NULL || atomic_load_explicit(&c->hdr->barrier_pid, memory_order_acquire) == 0)
		return;
	shim_busy++;
	ctl_barrier_wait(c, shim_wait_us());
	shim_busy--;
	errno = saved;
}

/* A commit is running or done: the target must have every acknowledged
 * write from now on. */
static bool commit_near(const struct ctl *c)
{
	return atomic_load_explicit(&c->hdr->barrier_pid, memory_order_acquire) != 0 ||
	       atomic_load_explicit(&c->hdr->state, memory_order_acquire) == SESS_COMMITTED;
}

/* rwf: RWF_DSYNC or RWF_SYNC when the program's write had them. */
static int pwrite_all(int fd, const char *p, size_t n, uint64_t off, int rwf)
{
	while (n > 0) {
		struct iovec one = { .iov_base = (void *)p, .iov_len = n };
		ssize_t w = rwf != 0 ? REAL(pwritev2)(fd, &one, 1, (off_t)off, rwf)
				     : REAL(pwrite)(fd, p, n, (off_t)off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		if (w == 0)
			return -EIO;
		p += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

/* Copy [off, off + n) from the source fd to the target fd. */
static int copy_range(int src, int tgt, uint64_t off, uint64_t n, int rwf)
{
	char *buf = malloc(MIRROR_BUF);
	int rc = 0;

	if (buf == NULL)
		return -ENOMEM;
	while (n > 0 && rc == 0) {
		size_t k = n > MIRROR_BUF ? MIRROR_BUF : (size_t)n;
		ssize_t r = REAL(pread)(src, buf, k, (off_t)off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			rc = r < 0 ? -errno : 0;
			break; /* the end of the source */
		}
		rc = pwrite_all(tgt, buf, (size_t)r, off, rwf);
		off += (uint64_t)r;
		n -= (uint64_t)r;
	}
	free(buf);
	return rc;
}

/* A target write of [off, off + n) failed with rc: its regions are dirty
 * already (logged before the write); make sure, count the failure, and let
 * the copier copy them again.  rc when the application's call must fail
 * (a commit is near), else 0. */
static int mirror_failed(const struct ctl *c, int pair, uint64_t off, uint64_t n, int rc)
{
	uint64_t first, nr, size = c->hdr->pairs[pair].size;

	if (off < size) {
		region_span(off, n < size - off ? n : size - off, c->hdr->region_shift, &first, &nr);
		ctl_mark_dirty_range((struct ctl *)c, (uint32_t)pair, first, first + nr - 1);
	}
	atomic_fetch_add_explicit(&((struct ctl *)c)->hdr->mirror_errors[pair], 1,
				  memory_order_relaxed);
	return commit_near(c) ? rc : 0;
}

int shim_mirror(int pair, int srcfd, const struct iovec *iov, int cnt, uint64_t off, uint64_t n,
		int rwf)
{
	const struct ctl *c = shim_ctl();
	int tfd, rc = 0, saved = errno;

	if (c == NULL || n == 0)
		return 0;
	rwf &= RWF_DSYNC | RWF_SYNC;
	shim_busy++;
	tfd = shim_target_fd(pair, srcfd);
	if (tfd < 0) {
		rc = tfd;
	} else if (iov == NULL) {
		rc = copy_range(srcfd, tfd, off, n, rwf);
	} else {
		uint64_t left = n, at = off;

		for (int i = 0; i < cnt && left > 0 && rc == 0; i++) {
			size_t k = iov[i].iov_len < left ? iov[i].iov_len : (size_t)left;

			rc = pwrite_all(tfd, iov[i].iov_base, k, at, rwf);
			at += k;
			left -= k;
		}
	}
	if (rc == -EBADF && tfd >= 0)
		shim_target_fd_lost(pair, tfd);
	if (rc < 0)
		rc = mirror_failed(c, pair, off, n, rc);
	shim_busy--;
	errno = saved;
	return rc;
}

int shim_mirror_truncate(int pair, int srcfd, uint64_t from, uint64_t len)
{
	const struct ctl *c = shim_ctl();
	struct stat st;
	int tfd, rc = 0, saved = errno;

	if (c == NULL)
		return 0;
	shim_busy++;
	tfd = shim_target_fd(pair, srcfd);
	if (tfd < 0)
		rc = tfd;
	else if (fstat(tfd, &st) < 0)
		rc = -errno;
	else if (S_ISREG(st.st_mode) && REAL(ftruncate)(tfd, (off_t)len) < 0)
		rc = -errno;
	if (rc < 0)
		rc = mirror_failed(c, pair, from, UINT64_MAX - from, rc);
	shim_busy--;
	errno = saved;
	return rc;
}
