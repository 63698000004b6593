/*
 * dlog: dirty-log segments.  See dlog.h for the format and the rules.
 */
#include "dlog.h"
#include "crash.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void dlog_rec_encode(const struct dlog_rec *r, uint64_t salt, uint8_t out[DLOG_REC_SIZE])
{
	put64(out, r->seq);
	put32(out + 8, r->pair);
	put32(out + 12, r->count);
	put64(out + 16, r->first);
	put64(out + 24, XXH3_64bits_withSeed(out, 24, salt));
}

#define HDR_BODY 56 /* bytes covered by the header checksum */

void dlog_hdr_encode(const struct dlog_hdr *h, uint8_t out[DLOG_HDR_SIZE])
{
	memset(out, 0, DLOG_HDR_SIZE);
	put64(out, DLOG_MAGIC);
	put32(out + 8, DLOG_VERSION);
	put32(out + 12, DLOG_HDR_SIZE);
	put64(out + 16, h->session_id);
	put64(out + 24, h->salt);
	put32(out + 32, (uint32_t)h->pid);
	put32(out + 36, h->lost_events);
	put64(out + 40, h->start);
	put64(out + 48, h->lost_pairs);
	put64(out + HDR_BODY, XXH3_64bits(out, HDR_BODY));
}

int dlog_hdr_decode(const uint8_t *buf, size_t len, struct dlog_hdr *h)
{
	if (len < HDR_BODY + 8 || get64(buf) != DLOG_MAGIC || get32(buf + 8) != DLOG_VERSION ||
	    get32(buf + 12) != DLOG_HDR_SIZE || get64(buf + HDR_BODY) != XXH3_64bits(buf, HDR_BODY))
		return -EBADMSG;
	h->magic = DLOG_MAGIC;
	h->version = DLOG_VERSION;
	h->hdr_size = DLOG_HDR_SIZE;
	h->session_id = get64(buf + 16);
	h->salt = get64(buf + 24);
	h->pid = (int32_t)get32(buf + 32);
	h->lost_events = get32(buf + 36);
	h->start = get64(buf + 40);
	h->lost_pairs = get64(buf + 48);
	h->checksum = get64(buf + HDR_BODY);
	return 0;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != 0)
			return false;
	return true;
}

size_t dlog_scan(const uint8_t *buf, size_t len, uint64_t salt, uint64_t first_seq,
		 void (*fn)(const struct dlog_rec *r, void *arg), void *arg, struct dlog_scan *res)
{
	size_t off = 0, n = 0;
	uint64_t seq = first_seq;

	res->end = DLOG_END_CLEAN;
	res->bad_off = 0;
	while (len - off >= DLOG_REC_SIZE) {
		const uint8_t *p = buf + off;
		struct dlog_rec r;

		if (all_zero(p, DLOG_REC_SIZE))
			break; /* preallocated space: the end */
		r.seq = get64(p);
		r.pair = get32(p + 8);
		r.count = get32(p + 12);
		r.first = get64(p + 16);
		if (get64(p + 24) != XXH3_64bits_withSeed(p, 24, salt) || r.seq != seq ||
		    r.count == 0 || r.first + r.count < r.first) {
			res->bad_off = off;
			res->end = all_zero(p + DLOG_REC_SIZE, len - off - DLOG_REC_SIZE)
					   ? DLOG_END_TORN
					   : DLOG_END_CORRUPT;
			break;
		}
		if (fn != NULL)
			fn(&r, arg);
		n++;
		seq++;
		off += DLOG_REC_SIZE;
	}
	/* a partial record at the very end is a torn append: not part of the prefix */
	res->valid = off;
	res->next_seq = seq;
	return n;
}

int dlog_seg_name(pid_t pid, uint64_t start, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%d-%llu.seg", (int)pid, (unsigned long long)start);

	return (n < 0 || (size_t)n >= len) ? -ENAMETOOLONG : 0;
}

static int pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

static int datasync(int fd)
{
	while (fdatasync(fd) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

/*
 * fdatasync the segment, for an append or a header update; 0 or -errno.
 * The kernel reports a writeback error once, to one fdatasync of the file:
 * when two run at once, the one that succeeded may have found the error
 * already taken by the other, still on its way to setting `broken`.  So a
 * failure sets `broken` before its sync counts as ended, and a sync that
 * succeeded waits for every sync in flight when it ended (the ones begun
 * after cannot have taken an error it would have seen) before it trusts
 * `broken`: -EIO if set.
 */
static int seg_sync(struct dlog_writer *w)
{
	struct dlog_flight me = { .prev = NULL, .next = NULL };
	uint64_t last;
	int rc;

	pthread_mutex_lock(&w->fl_mu);
	me.ticket = ++w->fl_next;
	me.prev = w->fl_tail;
	if (w->fl_tail != NULL)
		w->fl_tail->next = &me;
	else
		w->fl_head = &me;
	w->fl_tail = &me;
	pthread_mutex_unlock(&w->fl_mu);

	rc = datasync(w->fd);

	pthread_mutex_lock(&w->fl_mu);
	if (rc < 0)
		atomic_store_explicit(&w->broken, true, memory_order_release);
	if (me.prev != NULL)
		me.prev->next = me.next;
	else
		w->fl_head = me.next;
	if (me.next != NULL)
		me.next->prev = me.prev;
	else
		w->fl_tail = me.prev;
	pthread_cond_broadcast(&w->fl_cv);
	last = w->fl_next;
	while (w->fl_head != NULL && w->fl_head->ticket <= last)
		pthread_cond_wait(&w->fl_cv, &w->fl_mu);
	if (rc == 0 && atomic_load_explicit(&w->broken, memory_order_acquire))
		rc = -EIO;
	pthread_mutex_unlock(&w->fl_mu);
	return rc;
}

int dlog_writer_create(struct dlog_writer *w, int dirfd, const char *path, uint64_t session_id,
		       pid_t pid, uint64_t start, bool sync_each)
{
	uint8_t hdr[DLOG_HDR_SIZE];
	int rc;

	memset(w, 0, sizeof(*w));
	w->fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (w->fd < 0)
		return -errno;
	if (getrandom(&w->salt, sizeof(w->salt), GRND_NONBLOCK) != sizeof(w->salt))
		w->salt = (uint64_t)time(NULL) * UINT64_C(0x9e3779b97f4a7c15) ^ (uint64_t)pid;
	w->sync_each = sync_each;
	w->hdr = (struct dlog_hdr){ .session_id = session_id, .salt = w->salt, .pid = pid,
				    .start = start };
	dlog_hdr_encode(&w->hdr, hdr);
	/* the header and the first records' space are allocated up front */
	rc = posix_fallocate(w->fd, 0, DLOG_HDR_SIZE + DLOG_PREALLOC);
	if (rc != 0) {
		rc = -rc;
		goto fail;
	}
	rc = pwrite_all(w->fd, hdr, sizeof(hdr), 0);
	if (rc == 0)
		rc = datasync(w->fd);
	if (rc == 0 && dirfd >= 0 && fsync(dirfd) < 0)
		rc = -errno;
	if (rc < 0)
		goto fail;
	w->tail = DLOG_HDR_SIZE;
	w->prealloc_end = DLOG_HDR_SIZE + DLOG_PREALLOC;
	atomic_init(&w->written, DLOG_HDR_SIZE);
	atomic_init(&w->durable, DLOG_HDR_SIZE);
	pthread_mutex_init(&w->mu, NULL);
	pthread_mutex_init(&w->sync_mu, NULL);
	pthread_cond_init(&w->sync_cv, NULL);
	pthread_mutex_init(&w->fl_mu, NULL);
	pthread_cond_init(&w->fl_cv, NULL);
	w->syncing = false;
	atomic_init(&w->broken, false);
	return 0;

fail:
	close(w->fd);
	unlinkat(AT_FDCWD, path, 0);
	w->fd = -1;
	return rc;
}

void dlog_writer_close(struct dlog_writer *w)
{
	if (w->fd >= 0) {
		close(w->fd);
		pthread_mutex_destroy(&w->mu);
		pthread_mutex_destroy(&w->sync_mu);
		pthread_cond_destroy(&w->sync_cv);
		pthread_mutex_destroy(&w->fl_mu);
		pthread_cond_destroy(&w->fl_cv);
	}
	w->fd = -1;
}

/* The record could not be written: make the loss of tracking durable in the
 * header instead.  Caller holds mu.  1 when durable, else -errno. */
static int mark_lost(struct dlog_writer *w, uint32_t pair, int why)
{
	uint8_t hdr[DLOG_HDR_SIZE];
	int rc;

	/* every loss counts, also a second one for a pair already flagged:
	 * the copier re-copies the flagged pairs once per loss it sees */
	w->hdr.lost_pairs |= UINT64_C(1) << (pair & 63);
	w->hdr.lost_events++;
	dlog_hdr_encode(&w->hdr, hdr);
	/* the header block is allocated: overwriting it needs no new space */
	rc = pwrite_all(w->fd, hdr, 512, 0);
	if (rc == 0)
		rc = seg_sync(w);
	return rc == 0 ? 1 : (why < 0 ? why : rc);
}

int dlog_append(struct dlog_writer *w, uint32_t pair, uint64_t first, uint32_t count)
{
	uint8_t rec[DLOG_REC_SIZE];
	uint64_t end;
	int rc = 0;

	pthread_mutex_lock(&w->mu);
	if (atomic_load_explicit(&w->broken, memory_order_acquire)) {
		pthread_mutex_unlock(&w->mu);
		return -EIO;
	}
	if (w->tail + DLOG_REC_SIZE > w->prealloc_end) {
		rc = -posix_fallocate(w->fd, (off_t)w->prealloc_end, DLOG_PREALLOC);
		if (rc == 0)
			w->prealloc_end += DLOG_PREALLOC;
	}
	if (rc == 0) {
		struct dlog_rec r = { .seq = (w->tail - DLOG_HDR_SIZE) / DLOG_REC_SIZE + 1,
				      .pair = pair, .count = count, .first = first };

		dlog_rec_encode(&r, w->salt, rec);
		CRASH_POINT("dlog.append.before");
		rc = pwrite_all(w->fd, rec, sizeof(rec), (off_t)w->tail);
		if (rc == 0)
			CRASH_POINT("dlog.append.after");
	}
	if (rc == -ENOSPC || rc == -EDQUOT) {
		rc = mark_lost(w, pair, rc);
		pthread_mutex_unlock(&w->mu);
		return rc;
	}
	if (rc < 0) {
		pthread_mutex_unlock(&w->mu);
		return rc;
	}
	w->tail += DLOG_REC_SIZE;
	end = w->tail;
	/* release: a leader that reads `written` syncs a file holding our record */
	atomic_store_explicit(&w->written, end, memory_order_release);
	pthread_mutex_unlock(&w->mu);

	if (w->sync_each) {
		rc = seg_sync(w);
		if (rc == 0)
			CRASH_POINT("dlog.flush.after");
		return rc;
	}
	/* group commit: one fdatasync covers every record written before it.
	 * A waiter returns as soon as its record is durable, whoever synced
	 * it: all the waiters a sync covers are woken at once, and none of
	 * them waits on for a later sync it does not need. */
	if (atomic_load_explicit(&w->durable, memory_order_acquire) >= end)
		return 0;
	pthread_mutex_lock(&w->sync_mu);
	while (atomic_load_explicit(&w->durable, memory_order_acquire) < end) {
		uint64_t upto;

		if (atomic_load_explicit(&w->broken, memory_order_acquire)) {
			rc = -EIO;
			break;
		}
		if (w->syncing) {
			pthread_cond_wait(&w->sync_cv, &w->sync_mu);
			continue;
		}
		w->syncing = true;
		upto = atomic_load_explicit(&w->written, memory_order_acquire);
		pthread_mutex_unlock(&w->sync_mu);
		rc = seg_sync(w); /* sets `broken` when it fails */
		pthread_mutex_lock(&w->sync_mu);
		w->syncing = false;
		if (rc == 0) {
			atomic_store_explicit(&w->durable, upto, memory_order_release);
			CRASH_POINT("dlog.flush.after");
		}
		pthread_cond_broadcast(&w->sync_cv);
		if (rc < 0)
			break; /* the waiters it left uncovered see `broken` */
	}
	pthread_mutex_unlock(&w->sync_mu);
	return rc;
}
