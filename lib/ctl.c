/*
 * ctl: control block creation, validation and the region protocol.
 *
 * Memory orders: the copier's fetch_or(CIP) and the writers' CAS that counts
 * a write in flight are both acq_rel read-modify-writes of the same word, so
 * they are totally ordered: either the writer's increment comes first (and
 * the copier waits for its decrement, whose release pairs with the copier's
 * acquire load), or CIP comes first (and the writer sees it in its CAS and
 * waits).  Clearing DIRTY happens only after the drain, so a writer counted
 * after that point sees DIRTY clear and logs its intent (I2, I4).
 */
#include "ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CTL_PAGE 4096u

static uint64_t fnv1a(const void *p, size_t n)
{
	const unsigned char *b = p;
	uint64_t h = UINT64_C(0xcbf29ce484222325);

	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= UINT64_C(0x100000001b3);
	}
	return h;
}

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Back off while waiting on another process: yield first, then sleep. */
static void backoff(unsigned *spins)
{
	if (++*spins < 64) {
		sched_yield();
	} else {
		struct timespec ts = { 0, 50 * 1000 };
		nanosleep(&ts, NULL);
	}
}

int ctl_path(const char *dir, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/ctl", dir);

	return (n < 0 || (size_t)n >= len) ? -ENAMETOOLONG : 0;
}

int ctl_lock_open(const char *dir)
{
	char path[4200];
	int fd;

	if (snprintf(path, sizeof(path), "%s/ctl.lock", dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	return fd < 0 ? -errno : fd;
}

int ctl_lock_exclusive(int fd)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1 };

	if (fcntl(fd, F_OFD_SETLK, &fl) < 0)
		return (errno == EACCES || errno == EAGAIN) ? -EAGAIN : -errno;
	return 0;
}

int ctl_lock_shared(int fd)
{
	struct flock fl = { .l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1 };

	while (fcntl(fd, F_OFD_SETLKW, &fl) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

int ctl_lock_untracked(int fd)
{
	struct flock fl = { .l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 1, .l_len = 1 };

	while (fcntl(fd, F_OFD_SETLKW, &fl) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

int ctl_lock_length_try(int fd, int type)
{
	struct flock fl = { .l_type = (short)type, .l_whence = SEEK_SET, .l_start = 2, .l_len = 1 };

	if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
		return 0;
	return errno == EACCES || errno == EAGAIN || errno == EINTR ? -EAGAIN : -errno;
}

int ctl_lock_length(int fd, int type)
{
	struct timespec ts = { .tv_nsec = 50000 };
	int rc;

	/* Polled, not F_OFD_SETLKW: a wait in the kernel is invisible to
	 * tools that run one thread at a time (valgrind does not know the OFD
	 * waiting command and would keep every other thread, the holders
	 * included, from running).  Held exclusive only briefly or by a
	 * commit; 50 us doubling to 10 ms between tries. */
	while ((rc = ctl_lock_length_try(fd, type)) == -EAGAIN) {
		nanosleep(&ts, NULL);
		if (ts.tv_nsec < 10000000)
			ts.tv_nsec *= 2;
	}
	return rc;
}

int ctl_lock_untracked_drain(int fd, unsigned wait_ms)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 1, .l_len = 1 };
	struct timespec ts = { .tv_nsec = 1000000 };
	uint64_t deadline = now_us() + (uint64_t)wait_ms * 1000u;

	while (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
		if (errno != EACCES && errno != EAGAIN && errno != EINTR)
			return -errno;
		if (now_us() >= deadline)
			return -ETIMEDOUT;
		nanosleep(&ts, NULL);
	}
	fl.l_type = F_UNLCK;
	(void)fcntl(fd, F_OFD_SETLK, &fl);
	return 0;
}

void ctl_reset(struct ctl *c)
{
	uint32_t word = atomic_load_explicit(&c->hdr->pristine, memory_order_relaxed) ? CTL_DIRTY : 0;

	for (uint64_t r = 0; r < c->hdr->nregions; r++)
		atomic_store_explicit(&c->regions[r], word, memory_order_relaxed);
	for (unsigned i = 0; i < CTL_MAX_PROCS; i++) {
		struct ctl_proc *p = &c->hdr->procs[i];

		for (unsigned k = 0; k < CTL_PROC_WRITES / 64; k++)
			atomic_store_explicit(&p->used[k], 0, memory_order_relaxed);
		atomic_store_explicit(&p->pid, 0, memory_order_relaxed);
	}
	atomic_store_explicit(&c->hdr->copier_pid, 0, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
}

static size_t checksum_span(void)
{
	return offsetof(struct ctl_hdr, checksum);
}

int ctl_validate(const void *buf, size_t len)
{
	const struct ctl_hdr *h = buf;
	uint64_t expect = 0;

	if (len < sizeof(*h))
		return -EBADMSG;
	if (h->magic != CTL_MAGIC || h->version != CTL_VERSION || h->hdr_size != sizeof(*h) ||
	    h->map_size != len || h->npairs == 0 || h->npairs > CTL_MAX_PAIRS ||
	    h->region_shift < 12 || h->region_shift > 30)
		return -EBADMSG;
	if (h->strtab_off < sizeof(*h) || h->strtab_off > len || h->strtab_len > len - h->strtab_off)
		return -EBADMSG;
	if (h->regions_off % CTL_PAGE != 0 || h->regions_off < h->strtab_off + h->strtab_len ||
	    h->regions_off > len || h->nregions > (len - h->regions_off) / 4)
		return -EBADMSG;
	for (uint32_t i = 0; i < h->npairs; i++) {
		const struct ctl_pair *p = &h->pairs[i];
		uint64_t n = (p->size >> h->region_shift) +
			     ((p->size & ((UINT64_C(1) << h->region_shift) - 1)) != 0);

		if (p->nregions != n || p->first_region != expect ||
		    p->nregions > h->nregions - expect)
			return -EBADMSG;
		expect += p->nregions;
		if ((uint64_t)p->source_off + p->source_len > h->strtab_len ||
		    (uint64_t)p->target_off + p->target_len > h->strtab_len)
			return -EBADMSG;
	}
	if (expect != h->nregions)
		return -EBADMSG;
	if (fnv1a(h, checksum_span()) != h->checksum)
		return -EBADMSG;
	return 0;
}

/*
 * The DIRTY words of p->dirty_tail, through fd (the same pages as the new
 * mapping), after the header is durable: region words never were (a block
 * found after a power loss is rebuilt or reset).  0 or -errno (ENOSPC: the
 * file system could not hold the block; through the mapping that would
 * have been a SIGBUS).
 */
static int fill_dirty_tails(int fd, const struct ctl_hdr *h, const struct ctl_params *p)
{
	enum { CHUNK = 16384 };
	uint32_t *buf = NULL;

	for (uint32_t i = 0; i < p->npairs; i++) {
		const struct ctl_pair *cp = &h->pairs[i];
		uint64_t r = cp->nregions - (p->dirty_tail[i] < cp->nregions ? p->dirty_tail[i]
									    : cp->nregions);

		if (r < cp->nregions && buf == NULL) {
			buf = malloc(CHUNK * sizeof(*buf));
			if (buf == NULL)
				return -ENOMEM;
			for (unsigned k = 0; k < CHUNK; k++)
				buf[k] = CTL_DIRTY;
		}
		while (r < cp->nregions) {
			uint64_t n = cp->nregions - r < CHUNK ? cp->nregions - r : CHUNK;
			off_t off = (off_t)(h->regions_off + (cp->first_region + r) * sizeof(*buf));
			ssize_t w = pwrite(fd, buf, n * sizeof(*buf), off);

			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0 || w % (ssize_t)sizeof(*buf) != 0) {
				int rc = w < 0 ? -errno : -EIO; /* 0 bytes: would loop */

				free(buf);
				return rc;
			}
			r += (uint64_t)w / sizeof(*buf);
		}
	}
	free(buf);
	return 0;
}

int ctl_create(struct ctl *c, const char *path, const struct ctl_params *p)
{
	char tmp[4200];
	struct ctl_hdr *h;
	uint64_t nregions = 0, strtab_len = 0, regions_off, map_size;
	void *mem = MAP_FAILED;
	int fd = -1, rc;

	memset(c, 0, sizeof(*c));
	if (p->npairs == 0 || p->npairs > CTL_MAX_PAIRS)
		return -EINVAL;
	for (uint32_t i = 0; i < p->npairs; i++) {
		nregions += (p->sizes[i] >> p->region_shift) +
			    ((p->sizes[i] & ((UINT64_C(1) << p->region_shift) - 1)) != 0);
		strtab_len += strlen(p->sources[i]) + strlen(p->targets[i]) + 2;
	}
	regions_off = (sizeof(*h) + strtab_len + CTL_PAGE - 1) / CTL_PAGE * CTL_PAGE;
	map_size = regions_off + (nregions * 4 + CTL_PAGE - 1) / CTL_PAGE * CTL_PAGE;
	if (snprintf(tmp, sizeof(tmp), "%s.%d", path, (int)getpid()) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)map_size) < 0) {
		rc = -errno;
		goto fail;
	}
	mem = mmap(NULL, map_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (mem == MAP_FAILED) {
		rc = -errno;
		goto fail;
	}
	h = mem;
	h->magic = CTL_MAGIC;
	h->version = CTL_VERSION;
	h->hdr_size = sizeof(*h);
	h->map_size = map_size;
	h->session_id = p->session_id;
	h->region_shift = p->region_shift;
	h->npairs = p->npairs;
	h->nregions = nregions;
	h->strtab_off = sizeof(*h);
	h->strtab_len = strtab_len;
	h->regions_off = regions_off;
	h->flags = p->flags;
	atomic_store_explicit(&h->pristine, p->pristine ? 1 : 0, memory_order_relaxed);
	{
		char *strtab = (char *)mem + h->strtab_off;
		uint64_t off = 0, first = 0;

		for (uint32_t i = 0; i < p->npairs; i++) {
			struct ctl_pair *cp = &h->pairs[i];
			size_t sl = strlen(p->sources[i]), tl = strlen(p->targets[i]);

			cp->size = p->sizes[i];
			cp->nregions = (p->sizes[i] >> p->region_shift) +
				       ((p->sizes[i] & ((UINT64_C(1) << p->region_shift) - 1)) != 0);
			cp->first_region = first;
			first += cp->nregions;
			cp->source_id = p->source_ids[i];
			cp->target_id = p->target_ids[i];
			cp->source_off = (uint32_t)off;
			cp->source_len = (uint32_t)sl;
			memcpy(strtab + off, p->sources[i], sl + 1);
			off += sl + 1;
			cp->target_off = (uint32_t)off;
			cp->target_len = (uint32_t)tl;
			memcpy(strtab + off, p->targets[i], tl + 1);
			off += tl + 1;
		}
	}
	h->checksum = fnv1a(h, checksum_span());
	/* the header must survive a power loss: the block lives on disk and is
	 * found again after a reboot */
	if (msync(mem, map_size, MS_SYNC) < 0 || fsync(fd) < 0) {
		rc = -errno;
		goto fail;
	}
	rc = fill_dirty_tails(fd, h, p);
	if (rc < 0)
		goto fail;
	if (rename(tmp, path) < 0) {
		rc = -errno;
		goto fail;
	}
	close(fd);
	c->hdr = h;
	c->regions = (_Atomic uint32_t *)((char *)mem + regions_off);
	c->map_size = map_size;
	return 0;

fail:
	if (mem != MAP_FAILED)
		munmap(mem, map_size);
	close(fd);
	unlink(tmp);
	return rc;
}

int ctl_unpristine(struct ctl *c)
{
	if (!atomic_exchange_explicit(&c->hdr->pristine, 0, memory_order_acq_rel))
		return 0;
	/* the header starts the mapping, which is page-aligned */
	if (msync(c->hdr, sizeof(*c->hdr), MS_SYNC) < 0)
		return -errno;
	return 0;
}

void ctl_publish(struct ctl *c, uint32_t state)
{
	atomic_store_explicit(&c->hdr->state, state, memory_order_relaxed);
	atomic_fetch_add_explicit(&c->hdr->epoch, 1, memory_order_relaxed);
	/* release: a process that sees ready == 1 (acquire) sees the region
	 * words and state written before it */
	atomic_store_explicit(&c->hdr->ready, 1, memory_order_release);
}

int ctl_attach(struct ctl *c, const char *path)
{
	struct stat st;
	void *mem;
	int fd, rc;

	memset(c, 0, sizeof(*c));
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	if (st.st_size < (off_t)sizeof(struct ctl_hdr)) {
		close(fd);
		return -EBADMSG;
	}
	mem = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	rc = -errno;
	close(fd);
	if (mem == MAP_FAILED)
		return rc;
	rc = ctl_validate(mem, (size_t)st.st_size);
	if (rc == 0 && !atomic_load_explicit(&((struct ctl_hdr *)mem)->ready, memory_order_acquire))
		rc = -EAGAIN;
	if (rc < 0) {
		munmap(mem, (size_t)st.st_size);
		return rc;
	}
	c->hdr = mem;
	c->regions = (_Atomic uint32_t *)((char *)mem + c->hdr->regions_off);
	c->map_size = (size_t)st.st_size;
	return 0;
}

void ctl_detach(struct ctl *c)
{
	if (c->hdr != NULL)
		munmap(c->hdr, c->map_size);
	memset(c, 0, sizeof(*c));
}

int ctl_copy_begin(struct ctl *c, uint32_t pair, uint64_t r, uint64_t wait_us)
{
	_Atomic uint32_t *w = ctl_region(c, pair, r);
	uint64_t deadline = 0; /* set when a write is first seen in flight */
	unsigned spins = 0;
	uint32_t old;

	old = atomic_fetch_or_explicit(w, CTL_CIP, memory_order_acq_rel) | CTL_CIP;
	/* Clear DIRTY in the same step that sees no write in flight, so that a
	 * writer is counted either before (and drained) or after (and sees DIRTY
	 * clear, so logs its intent).  acquire: pairs with the release
	 * decrement in ctl_write_end, so the data of every drained write is
	 * visible to the copier's read of the source. */
	for (;;) {
		if (!(old & CTL_INFLIGHT)) {
			if (atomic_compare_exchange_weak_explicit(w, &old, old & ~(uint32_t)CTL_DIRTY,
								  memory_order_acq_rel,
								  memory_order_acquire))
				return 0;
			continue;
		}
		if (deadline == 0)
			deadline = now_us() + wait_us;
		else if (now_us() >= deadline) {
			atomic_fetch_and_explicit(w, ~(uint32_t)(CTL_CIP | CTL_RACED),
						  memory_order_acq_rel);
			return -EBUSY;
		}
		backoff(&spins);
		old = atomic_load_explicit(w, memory_order_acquire);
	}
}

int ctl_copy_end(struct ctl *c, uint32_t pair, uint64_t r)
{
	_Atomic uint32_t *w = ctl_region(c, pair, r);
	uint32_t old;

	old = atomic_fetch_and_explicit(w, ~(uint32_t)(CTL_CIP | CTL_RACED), memory_order_acq_rel);
	if (old & (CTL_RACED | CTL_DIRTY | CTL_INFLIGHT)) {
		/* a write went ahead during the copy: keep the region dirty so a
		 * later pass copies it again (its intent is in the dirty log) */
		atomic_fetch_or_explicit(w, CTL_DIRTY, memory_order_relaxed);
		return 0;
	}
	return 1;
}

void ctl_barrier_wait(const struct ctl *c, uint64_t wait_us)
{
	int32_t holder = atomic_load_explicit(&c->hdr->barrier_pid, memory_order_acquire);
	uint64_t deadline;

	if (holder <= 0)
		return;
	/* by the clock, not by counting sleeps: each 200 us sleep with its
	 * check took about 340 us, so a count of them held writes about 150 ms
	 * for a 100 ms wait */
	deadline = now_us() + wait_us;
	while (holder > 0 && now_us() < deadline && (kill(holder, 0) == 0 || errno != ESRCH)) {
		struct timespec ts = { .tv_nsec = 200000 };

		nanosleep(&ts, NULL);
		holder = atomic_load_explicit(&c->hdr->barrier_pid, memory_order_acquire);
	}
}

int ctl_copy_end_held(struct ctl *c, uint32_t pair, uint64_t r)
{
	_Atomic uint32_t *w = ctl_region(c, pair, r);
	uint32_t old = atomic_load_explicit(w, memory_order_relaxed);

	while (!atomic_compare_exchange_weak_explicit(
		w, &old, (old & ~(uint32_t)(CTL_CIP | CTL_RACED)) | CTL_DIRTY, memory_order_acq_rel,
		memory_order_relaxed))
		;
	return (old & (CTL_RACED | CTL_DIRTY | CTL_INFLIGHT)) ? 0 : 1;
}

void ctl_mark_dirty(struct ctl *c, uint32_t pair, uint64_t r)
{
	atomic_fetch_or_explicit(ctl_region(c, pair, r), CTL_DIRTY, memory_order_release);
}

void ctl_write_end(struct ctl *c, uint32_t pair, uint64_t r)
{
	/* release: the completed write happens-before the copier's acquire
	 * load that sees the count drop */
	atomic_fetch_sub_explicit(ctl_region(c, pair, r), 1, memory_order_release);
}

uint64_t ctl_dirty_count(const struct ctl *c, uint32_t pair)
{
	const struct ctl_pair *p = &c->hdr->pairs[pair];
	uint64_t n = 0;

	for (uint64_t r = 0; r < p->nregions; r++)
		n += (atomic_load_explicit(&c->regions[p->first_region + r],
					   memory_order_relaxed) & CTL_DIRTY) != 0;
	return n;
}

/* Field 22 of /proc/pid/stat. */
uint64_t ctl_proc_start(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long start = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = strrchr(buf, ')'); /* the command name may hold spaces */
	if (p == NULL || p[1] != ' ')
		return 0;
	/* field 3 is the state: a zombie (or dead) process runs no code and
	 * finishes no write, whether or not its parent reaped it yet */
	if (p[2] == 'Z' || p[2] == 'X' || p[2] == 'x')
		return 0;
	/* after ") " come fields 3..; start time is field 22 */
	for (int field = 2; field < 22 && p != NULL; field++)
		p = strchr(p + 1, ' ');
	if (p == NULL || sscanf(p + 1, "%llu", &start) != 1)
		return 0;
	return start;
}

int ctl_proc_register(struct ctl *c, pid_t pid)
{
	uint64_t start = ctl_proc_start(pid);

	for (unsigned i = 0; i < CTL_MAX_PROCS; i++) {
		struct ctl_proc *s = &c->hdr->procs[i];
		int32_t expect = 0;

		if (atomic_load_explicit(&s->pid, memory_order_relaxed) == 0 &&
		    atomic_compare_exchange_strong_explicit(&s->pid, &expect, (int32_t)pid,
							    memory_order_acq_rel,
							    memory_order_relaxed)) {
			atomic_store_explicit(&s->start, start, memory_order_relaxed);
			atomic_store_explicit(&s->epoch,
					      atomic_load_explicit(&c->hdr->epoch,
								   memory_order_acquire),
					      memory_order_release);
			return 0;
		}
	}
	return -ENOSPC;
}

void ctl_proc_unregister(struct ctl *c, pid_t pid)
{
	for (unsigned i = 0; i < CTL_MAX_PROCS; i++) {
		struct ctl_proc *s = &c->hdr->procs[i];
		int32_t expect = (int32_t)pid;

		if (atomic_compare_exchange_strong_explicit(&s->pid, &expect, 0,
							    memory_order_acq_rel,
							    memory_order_relaxed))
			return;
	}
}

unsigned ctl_live_procs(const struct ctl *c, pid_t except)
{
	unsigned n = 0;

	for (unsigned i = 0; i < CTL_MAX_PROCS; i++) {
		const struct ctl_proc *s = &c->hdr->procs[i];
		int32_t pid = atomic_load_explicit(&s->pid, memory_order_acquire);
		uint64_t start;

		if (pid <= 0 || pid == (int32_t)except)
			continue;
		if (kill(pid, 0) < 0 && errno == ESRCH)
			continue;
		start = atomic_load_explicit(&s->start, memory_order_relaxed);
		if (start != 0 && ctl_proc_start(pid) != start)
			continue; /* the pid was reused by another process */
		n++;
	}
	return n;
}

/* Count one write in flight on region word w, waiting out CIP until the
 * deadline (0: not started).  Returns the word before the increment. */
static uint32_t region_enter(_Atomic uint32_t *w, uint64_t wait_us, uint64_t *deadline,
			     unsigned *spins)
{
	uint32_t old = atomic_load_explicit(w, memory_order_relaxed), raced;

	for (;;) {
		raced = 0;
		if (old & CTL_CIP) {
			uint64_t t = now_us();

			if (*deadline == 0)
				*deadline = t + wait_us;
			if (t < *deadline) {
				backoff(spins);
				old = atomic_load_explicit(w, memory_order_relaxed);
				continue;
			}
			raced = CTL_RACED; /* I7: go ahead; the copy will not count */
		}
		if ((old & CTL_INFLIGHT) == CTL_INFLIGHT) {
			backoff(spins);
			old = atomic_load_explicit(w, memory_order_relaxed);
			continue;
		}
		if (atomic_compare_exchange_weak_explicit(w, &old,
							  ((old + 1) | raced) & ~(uint32_t)CTL_QUIET,
							  memory_order_acq_rel,
							  memory_order_relaxed))
			return old;
	}
}

int ctl_write_begin(struct ctl *c, uint32_t pair, uint64_t r, uint64_t wait_us)
{
	uint64_t deadline = 0;
	unsigned spins = 0;
	uint32_t old = region_enter(ctl_region(c, pair, r), wait_us, &deadline, &spins);

	return (old & CTL_DIRTY) ? 0 : 1;
}

static int journal_claim(struct ctl_proc *p)
{
	for (unsigned k = 0; k < CTL_PROC_WRITES / 64; k++) {
		uint64_t used = atomic_load_explicit(&p->used[k], memory_order_relaxed);

		while (~used) {
			unsigned bit = (unsigned)__builtin_ctzll(~used);

			if (atomic_compare_exchange_weak_explicit(&p->used[k], &used,
								  used | (UINT64_C(1) << bit),
								  memory_order_acquire,
								  memory_order_relaxed))
				return (int)(k * 64 + bit);
		}
	}
	return -1;
}

static void journal_release(struct ctl_proc *p, int entry)
{
	atomic_fetch_and_explicit(&p->used[entry / 64], ~(UINT64_C(1) << (entry % 64)),
				  memory_order_release);
}

void ctl_wbegin(struct ctl *c, int proc, uint32_t pair, uint64_t first, uint64_t n,
		uint64_t wait_us, int *entry, uint64_t *lo, uint64_t *hi)
{
	struct ctl_proc *p = proc >= 0 ? &c->hdr->procs[proc] : NULL;
	struct ctl_write *jw = NULL;
	uint64_t deadline = 0;
	unsigned spins = 0;
	int e = p != NULL ? journal_claim(p) : -1;

	*entry = e;
	*lo = UINT64_MAX;
	*hi = 0;
	if (e >= 0) {
		jw = &p->writes[e];
		atomic_store_explicit(&jw->pair, pair, memory_order_relaxed);
		atomic_store_explicit(&jw->first, first, memory_order_relaxed);
		atomic_store_explicit(&jw->done, 0, memory_order_release);
	}
	for (uint64_t i = 0; i < n; i++) {
		uint32_t old = region_enter(ctl_region(c, pair, first + i), wait_us, &deadline, &spins);

		if (jw != NULL) /* after the increment: never claims more than held */
			atomic_store_explicit(&jw->done, (uint32_t)(i + 1), memory_order_release);
		if (!(old & CTL_DIRTY)) {
			if (*lo > first + i)
				*lo = first + i;
			*hi = first + i;
		}
	}
}

void ctl_mark_dirty_range(struct ctl *c, uint32_t pair, uint64_t lo, uint64_t hi)
{
	for (uint64_t r = lo; r <= hi; r++)
		atomic_fetch_or_explicit(ctl_region(c, pair, r), CTL_DIRTY, memory_order_release);
}

void ctl_wend(struct ctl *c, int proc, uint32_t pair, uint64_t first, uint64_t n, int entry)
{
	struct ctl_proc *p = proc >= 0 ? &c->hdr->procs[proc] : NULL;
	struct ctl_write *jw = (p != NULL && entry >= 0) ? &p->writes[entry] : NULL;

	for (uint64_t i = n; i > 0; i--) {
		if (jw != NULL) /* before the decrement: never claims more than held */
			atomic_store_explicit(&jw->done, (uint32_t)(i - 1), memory_order_release);
		/* release: the completed write happens-before the copier's
		 * acquire load that sees the count drop */
		atomic_fetch_sub_explicit(ctl_region(c, pair, first + i - 1), 1, memory_order_release);
	}
	if (jw != NULL)
		journal_release(p, entry);
}

int ctl_proc_attach(struct ctl *c, pid_t pid, uint64_t start)
{
	for (unsigned i = 0; i < CTL_MAX_PROCS; i++) {
		struct ctl_proc *s = &c->hdr->procs[i];
		int32_t expect = 0;

		if (atomic_load_explicit(&s->pid, memory_order_relaxed) != 0)
			continue;
		if (!atomic_compare_exchange_strong_explicit(&s->pid, &expect, (int32_t)pid,
							     memory_order_acq_rel,
							     memory_order_relaxed))
			continue;
		atomic_store_explicit(&s->start, start, memory_order_relaxed);
		for (unsigned k = 0; k < CTL_PROC_WRITES / 64; k++)
			atomic_store_explicit(&s->used[k], 0, memory_order_relaxed);
		atomic_store_explicit(&s->epoch,
				      atomic_load_explicit(&c->hdr->epoch, memory_order_acquire),
				      memory_order_release);
		return (int)i;
	}
	return -ENOSPC;
}

void ctl_proc_detach(struct ctl *c, int proc)
{
	if (proc >= 0 && proc < CTL_MAX_PROCS)
		atomic_store_explicit(&c->hdr->procs[proc].pid, 0, memory_order_release);
}

unsigned ctl_repair_dead(struct ctl *c)
{
	unsigned repaired = 0;

	for (unsigned i = 0; i < CTL_MAX_PROCS; i++) {
		struct ctl_proc *s = &c->hdr->procs[i];
		int32_t pid = atomic_load_explicit(&s->pid, memory_order_acquire);
		uint64_t start = atomic_load_explicit(&s->start, memory_order_relaxed);
		bool dead;

		if (pid <= 0)
			continue;
		dead = kill(pid, 0) < 0 && errno == ESRCH;
		if (!dead && start != 0 && ctl_proc_start(pid) != start)
			dead = true; /* the pid now names another process */
		if (!dead)
			continue;
		/* claim the slot so that it is repaired exactly once */
		if (!atomic_compare_exchange_strong_explicit(&s->pid, &pid, -1, memory_order_acq_rel,
							     memory_order_relaxed))
			continue;
		for (unsigned e = 0; e < CTL_PROC_WRITES; e++) {
			struct ctl_write *jw = &s->writes[e];
			uint32_t pair, done;
			uint64_t first;

			if (!(atomic_load_explicit(&s->used[e / 64], memory_order_acquire) &
			      (UINT64_C(1) << (e % 64))))
				continue;
			pair = atomic_load_explicit(&jw->pair, memory_order_relaxed);
			first = atomic_load_explicit(&jw->first, memory_order_relaxed);
			done = atomic_load_explicit(&jw->done, memory_order_acquire);
			if (pair >= c->hdr->npairs || first > c->hdr->pairs[pair].nregions ||
			    done > c->hdr->pairs[pair].nregions - first)
				continue; /* garbage: leave the counts (regions stay dirty) */
			for (uint32_t k = 0; k < done; k++) {
				_Atomic uint32_t *w = ctl_region(c, pair, first + k);
				uint32_t old = atomic_load_explicit(w, memory_order_relaxed);

				/* Take the count back and nothing else.  Setting DIRTY
				 * here would be a lie nothing durable backs (the write may
				 * have died before its intent was durable), and later
				 * writers would then log nothing: a lost write at the next
				 * rebuild (found by the spin model).  A dead write that
				 * was issued found DIRTY set, or set it after its record
				 * was durable, and DIRTY cannot clear while it is counted. */
				while ((old & CTL_INFLIGHT) != 0 &&
				       !atomic_compare_exchange_weak_explicit(
					       w, &old, old - 1, memory_order_acq_rel,
					       memory_order_relaxed))
					;
			}
		}
		for (unsigned k = 0; k < CTL_PROC_WRITES / 64; k++)
			atomic_store_explicit(&s->used[k], 0, memory_order_relaxed);
		atomic_store_explicit(&s->pid, 0, memory_order_release);
		repaired++;
	}
	return repaired;
}
