/*
 * writer: the harness's workload writer, and the checker of what it wrote.
 *
 *   writer write  --dev PATH --size BYTES [--bs BYTES] [--procs P] [--threads T]
 *                 [--engine pwrite|pwritev2|libaio|mix] [--iodepth D] [--direct]
 *                 [--gen G] --ack DIR [--count N] [--seconds S] [--seed S]
 *                 [--region-of-interest OFF:LEN]
 *   writer verify --dev PATH --size BYTES [--bs BYTES] --ack DIR
 *
 * It is an ordinary libc + libaio + pthread program so that the scenario
 * tests can run it unmodified under the shim: every write to the volume goes
 * through pwrite, pwritev2 or io_submit, and the processes come from fork.
 *
 * write: P processes of T threads each make W = P * T writers; writer
 * w = proc * T + thread.  The volume is cut into blocks of --bs bytes and
 * block b belongs to writer b % W (within --region-of-interest, if given).
 * Only its owner writes a block, and never with two writes to it in flight,
 * so at any instant a block holds the last write its owner completed or one
 * the owner issued after that.  Every block written is self-describing: a
 * header (struct blk_hdr) with its index, its writer and a sequence number,
 * then pseudo-random bytes, all under an XXH3 checksum.  Sequence numbers are
 * (G << 40) | counter with G from --gen, so they keep growing when the test
 * restarts the whole writer with G + 1.  Once a write has completed in full
 * the thread appends {block, seq} to its own ack file DIR/ack.<G>.<w> with
 * one write(2): the ack files are the list of writes the application saw
 * succeed, and survive the SIGKILL of any process (not a power cut: there is
 * no fsync).  Without --count or --seconds it runs until killed.  Killing the
 * parent by pid ends the children too (PR_SET_PDEATHSIG).
 *
 * verify: for every block named in any ack file in DIR (all generations; a
 * torn last record is ignored) the block on the volume must carry a valid
 * header and checksum, its own index, and a sequence number at least the
 * highest one acknowledged for it: a later write that was never acknowledged
 * may have landed, an older one must not be there.  The writer id is not
 * checked since W may change between runs.  This is the check behind I1's
 * "every acknowledged application write is there" in the scenario tests: run
 * it on the source while the writer is stopped, and on the target after sync.
 *
 * Every process of a run holds a shared reference to one flock on DIR/lock,
 * which the kernel drops only when the last of them has exited (after their
 * in-flight aio has been reaped by exit).  A new run and verify wait for it,
 * so a killed run's dying children can never land an old write on top of a
 * newer run's acknowledged one.
 *
 * A kill can tear a buffered write that spans several pages, leaving a block
 * that fails its checksum; kill tests keep --bs at the page size or below.
 *
 * Exit status: 0 success; 1 I/O error or verification failure; 2 usage.
 * Headers and ack records are in host byte order.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <libaio.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "io.h"
#include "size.h"

#define BLK_MAGIC UINT64_C(0x314b4c4247494d56) /* "VMIGBLK1" on little-endian */
#define GEN_SHIFT 40
#define GEN_MAX ((UINT64_C(1) << (64 - GEN_SHIFT)) - 1)
#define COUNTER_MAX ((UINT64_C(1) << GEN_SHIFT) - 1)
#define MAX_PROCS 1024
#define MAX_THREADS 1024
#define MAX_WRITERS 65536
#define MAX_IODEPTH 4096
#define BUF_ALIGN 4096
#define SECTOR 512
#define LOCK_WAIT_MS 30000
#define MAX_BAD_SHOWN 20
#define ACK_CHUNK 4096 /* records read at a time by verify */

enum { EXIT_IO = 1, EXIT_USAGE = 2 };

enum engine { ENGINE_PWRITE, ENGINE_PWRITEV2, ENGINE_LIBAIO, ENGINE_MIX };
enum op { OP_PWRITE, OP_PWRITEV2, OP_AIO_PWRITE, OP_AIO_PWRITEV };
enum slot_state { SLOT_FREE, SLOT_PENDING, SLOT_INFLIGHT };

/* The first bytes of every block written; csum covers the whole block with
 * csum itself zero. */
struct blk_hdr {
	uint64_t magic;
	uint64_t block;    /* index: the block's offset / bs */
	uint64_t seq;      /* (gen << GEN_SHIFT) | counter */
	uint64_t csum;
	uint32_t writer;   /* w of the run that wrote it */
	uint32_t nwriters; /* W of that run */
	uint32_t bs;
	uint32_t gen;
	uint64_t reserved[2];
};
_Static_assert(sizeof(struct blk_hdr) == 64, "block header is 64 bytes");

/* One acknowledged write; appended to DIR/ack.<G>.<w>. */
struct ack_rec {
	uint64_t block;
	uint64_t seq;
};
_Static_assert(sizeof(struct ack_rec) == 16, "ack record is 16 bytes");

struct opts {
	const char *dev;
	const char *ack_dir;
	uint64_t size, bs;
	uint64_t procs, threads, iodepth, gen, count, seed, seconds_us;
	uint64_t roi_first, roi_end; /* blocks [roi_first, roi_end) are written */
	bool have_count, have_seconds, have_seed, direct;
	enum engine engine;
};

struct slot {
	struct iocb iocb;
	struct iovec iov[3];
	unsigned char *buf; /* one block, BUF_ALIGN-aligned */
	uint64_t block, seq;
	size_t done; /* bytes already written by short aio completions */
	enum op op;
	enum slot_state state;
};

struct worker {
	const struct opts *o;
	pthread_t tid;
	uint32_t w, nwriters;
	int fd, ack_fd;
	uint64_t rng;
	uint64_t first, nown; /* owned blocks: first + k * W for k < nown */
	uint64_t quota;       /* writes to issue; UINT64_MAX without --count */
	uint64_t issued, acked, counter;
	struct slot *slots;
	struct iocb **batch;
	struct io_event *events;
	unsigned nslots, inflight;
	bool aio;
	io_context_t ctx;
	int rc; /* the first error, -errno */
};

/* Set by the first thread of a process that fails; the others stop issuing
 * and drain.  Relaxed is enough: it only ends loops early. */
static atomic_bool stop_all;
/* CLOCK_MONOTONIC deadline in ns for --seconds, 0 for none; set before fork. */
static uint64_t deadline_ns;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print "writer: error: ..." with one write(2), so that the messages of
 * threads and processes failing together do not interleave. */
static void say(const char *fmt, ...)
{
	static const char prefix[] = "writer: error: ";
	char buf[1024];
	va_list ap;
	int n;

	memcpy(buf, prefix, sizeof(prefix) - 1);
	va_start(ap, fmt);
	n = vsnprintf(buf + sizeof(prefix) - 1, sizeof(buf) - sizeof(prefix), fmt, ap);
	va_end(ap);
	size_t len = sizeof(prefix) - 1 + (n < 0 ? 0 : (size_t)n);
	if (len > sizeof(buf) - 2)
		len = sizeof(buf) - 2;
	buf[len++] = '\n';
	fflush(stderr);
	while (write(STDERR_FILENO, buf, len) < 0 && errno == EINTR)
		;
}

static void usage(FILE *f)
{
	fputs("usage: writer write  --dev PATH --size BYTES [--bs BYTES] [--procs P] [--threads T]\n"
	      "                     [--engine pwrite|pwritev2|libaio|mix] [--iodepth D] [--direct]\n"
	      "                     [--gen G] --ack DIR [--count N] [--seconds S] [--seed S]\n"
	      "                     [--region-of-interest OFF:LEN]\n"
	      "       writer verify --dev PATH --size BYTES [--bs BYTES] --ack DIR\n",
	      f);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* splitmix64: small, fast and good enough to spread writes and fill blocks. */
static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static uint64_t rng_below(uint64_t *s, uint64_t n)
{
	return rng_next(s) % n;
}

static void seq_split(uint64_t seq, uint64_t *gen, uint64_t *counter)
{
	*gen = seq >> GEN_SHIFT;
	*counter = seq & COUNTER_MAX;
}

/* Fill buf with block `block` as writer w writes it with sequence seq. */
static void block_fill(const struct worker *wk, unsigned char *buf, uint64_t block,
		       uint64_t seq)
{
	const struct opts *o = wk->o;
	struct blk_hdr h = {
		.magic = BLK_MAGIC,
		.block = block,
		.seq = seq,
		.csum = 0,
		.writer = wk->w,
		.nwriters = wk->nwriters,
		.bs = (uint32_t)o->bs,
		.gen = (uint32_t)o->gen,
	};
	uint64_t s = block * UINT64_C(0xd6e8feb86659fd93) ^ seq ^ ((uint64_t)wk->w << 48);

	for (size_t i = sizeof(h); i < o->bs; i += sizeof(uint64_t)) {
		uint64_t v = rng_next(&s);
		memcpy(buf + i, &v, sizeof(v));
	}
	memcpy(buf, &h, sizeof(h));
	h.csum = XXH3_64bits(buf, o->bs);
	memcpy(buf + offsetof(struct blk_hdr, csum), &h.csum, sizeof(h.csum));
}

/* Cut buf into 2 or 3 iovecs (fewer only when O_DIRECT leaves no room for
 * sector-aligned pieces).  Returns the count. */
static int iov_split(struct worker *wk, struct slot *s)
{
	size_t grain = wk->o->direct ? SECTOR : 1;
	size_t units = wk->o->bs / grain;
	size_t cut[2];
	int n = 2 + (int)rng_below(&wk->rng, 2);

	if ((size_t)n > units)
		n = (int)units;
	if (n == 3) {
		do {
			cut[0] = 1 + rng_below(&wk->rng, units - 1);
			cut[1] = 1 + rng_below(&wk->rng, units - 1);
		} while (cut[0] == cut[1]);
		if (cut[0] > cut[1]) {
			size_t t = cut[0];
			cut[0] = cut[1];
			cut[1] = t;
		}
	} else if (n == 2) {
		cut[0] = 1 + rng_below(&wk->rng, units - 1);
	}
	size_t prev = 0;
	for (int i = 0; i < n; i++) {
		size_t end = i == n - 1 ? units : cut[i];
		s->iov[i].iov_base = s->buf + prev * grain;
		s->iov[i].iov_len = (end - prev) * grain;
		prev = end;
	}
	return n;
}

/* pwritev2 all of the iovecs (flags 0), retrying the rest after EINTR and
 * short writes.  Consumes iov. */
static int pwritev2_all(int fd, struct iovec *iov, int cnt, off_t off)
{
	while (cnt > 0) {
		ssize_t n = pwritev2(fd, iov, cnt, off, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		off += n;
		while (cnt > 0 && (size_t)n >= iov->iov_len) {
			n -= (ssize_t)iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt > 0) {
			iov->iov_base = (char *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

static const char *op_name(enum op op)
{
	switch (op) {
	case OP_PWRITE: return "pwrite";
	case OP_PWRITEV2: return "pwritev2";
	case OP_AIO_PWRITE: return "io_submit(PWRITE)";
	case OP_AIO_PWRITEV: return "io_submit(PWRITEV)";
	}
	return "?";
}

static void worker_fail(struct worker *wk, int rc, const char *what, uint64_t block)
{
	say("writer %" PRIu32 ": %s of block %" PRIu64 " of %s: %s", wk->w, what, block,
	    wk->o->dev, strerror(-rc));
	if (wk->rc == 0)
		wk->rc = rc;
	atomic_store_explicit(&stop_all, true, memory_order_relaxed);
}

/* The write of block/seq completed in full: record it. */
static int worker_ack(struct worker *wk, uint64_t block, uint64_t seq)
{
	struct ack_rec r = { .block = block, .seq = seq };
	ssize_t n;

	do
		n = write(wk->ack_fd, &r, sizeof(r));
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(r)) {
		int rc = n < 0 ? -errno : -EIO;
		say("writer %" PRIu32 ": appending to its ack file in %s: %s", wk->w,
		    wk->o->ack_dir, strerror(-rc));
		if (wk->rc == 0)
			wk->rc = rc;
		atomic_store_explicit(&stop_all, true, memory_order_relaxed);
		return rc;
	}
	wk->acked++;
	return 0;
}

static bool block_busy(const struct worker *wk, uint64_t block)
{
	for (unsigned i = 0; i < wk->nslots; i++)
		if (wk->slots[i].state != SLOT_FREE && wk->slots[i].block == block)
			return true;
	return false;
}

/* May the worker start one more write? */
static bool may_issue(const struct worker *wk)
{
	if (atomic_load_explicit(&stop_all, memory_order_relaxed))
		return false;
	if (wk->issued >= wk->quota)
		return false;
	if (deadline_ns != 0 && now_ns() >= deadline_ns)
		return false;
	return true;
}

static enum op op_choose(struct worker *wk)
{
	switch (wk->o->engine) {
	case ENGINE_PWRITE: return OP_PWRITE;
	case ENGINE_PWRITEV2: return OP_PWRITEV2;
	case ENGINE_LIBAIO: return OP_AIO_PWRITE;
	case ENGINE_MIX: break;
	}
	return (enum op)rng_below(&wk->rng, 4);
}

/* Prepare slot s for its (remaining) aio write; it becomes PENDING. */
static void slot_prep_aio(struct worker *wk, struct slot *s)
{
	size_t bs = wk->o->bs;
	long long off = (long long)(s->block * bs + s->done);

	if (s->op == OP_AIO_PWRITEV && s->done == 0) {
		int n = iov_split(wk, s);
		io_prep_pwritev(&s->iocb, wk->fd, s->iov, n, off);
	} else {
		io_prep_pwrite(&s->iocb, wk->fd, s->buf + s->done, bs - s->done, off);
	}
	s->iocb.data = s;
	s->state = SLOT_PENDING;
}

/* Start a new write in free slot s: synchronous ones complete (and are
 * acknowledged) here, aio ones are left PENDING.  0 or -errno. */
static int slot_start(struct worker *wk, struct slot *s)
{
	const struct opts *o = wk->o;
	uint64_t block;
	int rc;

	if (wk->counter >= COUNTER_MAX) {
		say("writer %" PRIu32 ": sequence counter exhausted; restart with a new --gen",
		    wk->w);
		wk->rc = -ERANGE;
		atomic_store_explicit(&stop_all, true, memory_order_relaxed);
		return -ERANGE;
	}
	do
		block = wk->first + rng_below(&wk->rng, wk->nown) * wk->nwriters;
	while (block_busy(wk, block));

	s->block = block;
	s->seq = (o->gen << GEN_SHIFT) | ++wk->counter;
	s->done = 0;
	s->op = op_choose(wk);
	block_fill(wk, s->buf, s->block, s->seq);
	wk->issued++;

	off_t off = (off_t)(s->block * o->bs);
	switch (s->op) {
	case OP_PWRITE:
		rc = io_pwrite_full(wk->fd, s->buf, o->bs, (uint64_t)off);
		break;
	case OP_PWRITEV2:
		rc = pwritev2_all(wk->fd, s->iov, iov_split(wk, s), off);
		break;
	case OP_AIO_PWRITE:
	case OP_AIO_PWRITEV:
		slot_prep_aio(wk, s);
		return 0;
	default:
		rc = -EINVAL;
	}
	if (rc < 0) {
		worker_fail(wk, rc, op_name(s->op), s->block);
		return rc;
	}
	return worker_ack(wk, s->block, s->seq);
}

/* Submit every PENDING slot.  0, or -errno after which pending slots have
 * been dropped (never issued, never acknowledged). */
static int worker_submit(struct worker *wk)
{
	unsigned nb = 0, off = 0;
	int rc = 0;

	for (unsigned i = 0; i < wk->nslots; i++)
		if (wk->slots[i].state == SLOT_PENDING)
			wk->batch[nb++] = &wk->slots[i].iocb;
	while (off < nb) {
		int n = io_submit(wk->ctx, (long)(nb - off), wk->batch + off);
		if (n == -EINTR)
			continue;
		if (n == -EAGAIN && wk->inflight > 0)
			break; /* retried after the next reap */
		if (n == -EAGAIN) {
			struct timespec ms = { 0, 1000000 };
			nanosleep(&ms, NULL);
			continue;
		}
		if (n <= 0) {
			rc = n < 0 ? n : -EIO;
			struct slot *s = wk->batch[off]->data;
			worker_fail(wk, rc, op_name(s->op), s->block);
			break;
		}
		for (int i = 0; i < n; i++)
			((struct slot *)wk->batch[off + (unsigned)i]->data)->state = SLOT_INFLIGHT;
		wk->inflight += (unsigned)n;
		off += (unsigned)n;
	}
	if (rc < 0)
		for (unsigned i = off; i < nb; i++)
			((struct slot *)wk->batch[i]->data)->state = SLOT_FREE;
	return rc;
}

/* Reap at least one aio completion and acknowledge the full ones. */
static int worker_reap(struct worker *wk)
{
	int n;

	do
		n = io_getevents(wk->ctx, 1, (long)wk->nslots, wk->events, NULL);
	while (n == -EINTR);
	if (n < 0) {
		say("writer %" PRIu32 ": io_getevents on %s: %s", wk->w, wk->o->dev,
		    strerror(-n));
		if (wk->rc == 0)
			wk->rc = n;
		atomic_store_explicit(&stop_all, true, memory_order_relaxed);
		return n;
	}
	for (int i = 0; i < n; i++) {
		struct slot *s = wk->events[i].data;
		long res = (long)wk->events[i].res;
		size_t left = wk->o->bs - s->done;

		wk->inflight--;
		s->state = SLOT_FREE;
		if (res < 0 || res == 0) {
			worker_fail(wk, res < 0 ? (int)res : -EIO, op_name(s->op), s->block);
		} else if ((size_t)res < left) {
			/* short: submit the rest unless a sibling already failed */
			s->done += (size_t)res;
			if (!atomic_load_explicit(&stop_all, memory_order_relaxed))
				slot_prep_aio(wk, s);
		} else {
			worker_ack(wk, s->block, s->seq);
		}
	}
	return 0;
}

static void *worker_run(void *arg)
{
	struct worker *wk = arg;

	for (;;) {
		for (unsigned i = 0; i < wk->nslots; i++) {
			if (wk->slots[i].state != SLOT_FREE)
				continue;
			if (!may_issue(wk) || slot_start(wk, &wk->slots[i]) < 0)
				break;
		}
		if (!wk->aio) {
			if (!may_issue(wk))
				break;
			continue;
		}
		if (atomic_load_explicit(&stop_all, memory_order_relaxed)) {
			for (unsigned i = 0; i < wk->nslots; i++)
				if (wk->slots[i].state == SLOT_PENDING)
					wk->slots[i].state = SLOT_FREE;
		} else {
			worker_submit(wk);
		}
		if (wk->inflight == 0) {
			bool pending = false;
			for (unsigned i = 0; i < wk->nslots; i++)
				pending |= wk->slots[i].state == SLOT_PENDING;
			if (!pending && !may_issue(wk))
				break;
			continue;
		}
		if (worker_reap(wk) < 0)
			break;
	}
	return NULL;
}

static void worker_release(struct worker *wk)
{
	if (wk->ctx != NULL)
		io_destroy(wk->ctx);
	if (wk->slots != NULL)
		for (unsigned i = 0; i < wk->nslots; i++)
			free(wk->slots[i].buf);
	free(wk->slots);
	free(wk->batch);
	free(wk->events);
	if (wk->ack_fd >= 0)
		close(wk->ack_fd);
}

/* Set up writer w of this process: its blocks, quota, buffers, ack file and
 * aio context.  0 or -errno (message printed). */
static int worker_init(struct worker *wk, const struct opts *o, uint32_t w, int fd)
{
	uint64_t nw = o->procs * o->threads;
	char path[4096];
	int rc;

	memset(wk, 0, sizeof(*wk));
	wk->o = o;
	wk->w = w;
	wk->nwriters = (uint32_t)nw;
	wk->fd = fd;
	wk->ack_fd = -1;
	wk->rng = o->seed ^ (o->gen * UINT64_C(0x9e3779b97f4a7c15)) ^
		  ((uint64_t)w * UINT64_C(0xc2b2ae3d27d4eb4f));
	rng_next(&wk->rng);
	wk->first = o->roi_first + (w + nw - o->roi_first % nw) % nw;
	wk->nown = wk->first < o->roi_end ? (o->roi_end - wk->first - 1) / nw + 1 : 0;
	wk->quota = !o->have_count ? UINT64_MAX : o->count / nw + (w < o->count % nw);
	wk->aio = o->engine == ENGINE_LIBAIO || o->engine == ENGINE_MIX;
	wk->nslots = 1;
	if (wk->aio)
		wk->nslots = (unsigned)(o->iodepth < wk->nown ? o->iodepth : wk->nown);

	wk->slots = calloc(wk->nslots, sizeof(*wk->slots));
	wk->batch = calloc(wk->nslots, sizeof(*wk->batch));
	wk->events = calloc(wk->nslots, sizeof(*wk->events));
	if (wk->slots == NULL || wk->batch == NULL || wk->events == NULL) {
		rc = -ENOMEM;
		say("writer %" PRIu32 ": out of memory", w);
		goto fail;
	}
	for (unsigned i = 0; i < wk->nslots; i++) {
		void *p = NULL;
		rc = -posix_memalign(&p, BUF_ALIGN, o->bs);
		if (rc < 0) {
			say("writer %" PRIu32 ": out of memory for buffers", w);
			goto fail;
		}
		wk->slots[i].buf = p;
	}

	snprintf(path, sizeof(path), "%s/ack.%" PRIu64 ".%" PRIu32, o->ack_dir, o->gen, w);
	wk->ack_fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644);
	if (wk->ack_fd < 0) {
		rc = -errno;
		say("cannot create ack file %s: %s%s", path, strerror(errno),
		    errno == EEXIST ? " (generation already used in this directory; pass a new --gen)"
				    : "");
		goto fail;
	}
	if (wk->aio) {
		rc = io_setup((int)wk->nslots, &wk->ctx);
		if (rc < 0) {
			wk->ctx = NULL;
			say("writer %" PRIu32 ": io_setup(%u): %s", w, wk->nslots, strerror(-rc));
			goto fail;
		}
	}
	return 0;
fail:
	worker_release(wk);
	wk->slots = NULL;
	wk->batch = NULL;
	wk->events = NULL;
	wk->ack_fd = -1;
	return rc;
}

/* Open the volume for writing; 0 and *fd, or -errno (message printed). */
static int dev_open(const struct opts *o, int *fd)
{
	int flags = O_RDWR | O_CLOEXEC | (o->direct ? O_DIRECT : 0);

	*fd = open(o->dev, flags);
	if (*fd >= 0)
		return 0;
	int rc = -errno;
	if (rc == -ENOENT)
		say("%s does not exist (the writer never creates a volume)", o->dev);
	else if (rc == -EINVAL && o->direct)
		say("%s: O_DIRECT is not supported here (tmpfs?); use a disk file or a loop device",
		    o->dev);
	else
		say("cannot open %s: %s", o->dev, strerror(-rc));
	return rc;
}

/* One process of the run: T threads.  Writes its acknowledged count to
 * report_fd.  Returns the exit status. */
static int proc_run(const struct opts *o, unsigned proc, int report_fd)
{
	struct worker *wks = NULL;
	unsigned started = 0;
	uint64_t acked = 0;
	int fd = -1, status = EXIT_IO, rc;

	if (dev_open(o, &fd) < 0)
		goto out;
	wks = calloc(o->threads, sizeof(*wks));
	if (wks == NULL) {
		say("out of memory");
		goto out;
	}
	for (; started < o->threads; started++) {
		uint32_t w = (uint32_t)(proc * o->threads + started);
		if (worker_init(&wks[started], o, w, fd) < 0)
			break;
		rc = pthread_create(&wks[started].tid, NULL, worker_run, &wks[started]);
		if (rc != 0) {
			say("pthread_create: %s", strerror(rc));
			worker_release(&wks[started]);
			break;
		}
	}
	if (started < o->threads)
		atomic_store_explicit(&stop_all, true, memory_order_relaxed);
	status = started == o->threads ? 0 : EXIT_IO;
	for (unsigned i = 0; i < started; i++) {
		pthread_join(wks[i].tid, NULL);
		if (wks[i].rc < 0)
			status = EXIT_IO;
		acked += wks[i].acked;
		worker_release(&wks[i]);
	}
	if (write(report_fd, &acked, sizeof(acked)) != (ssize_t)sizeof(acked))
		say("reporting to the parent: %s", strerror(errno));
out:
	free(wks);
	if (fd >= 0)
		close(fd);
	return status;
}

/* Take DIR/lock exclusively, waiting for the processes of an earlier run to
 * exit.  Returns the locked fd, or -errno (message printed).  With
 * create false a missing lock file gives -ENOENT silently. */
static int lock_take(const char *dir, bool create)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/lock", dir);
	fd = open(path, (create ? O_RDWR | O_CREAT : O_RDONLY) | O_CLOEXEC, 0644);
	if (fd < 0) {
		int rc = -errno;
		if (rc != -ENOENT || create)
			say("cannot open %s: %s", path, strerror(-rc));
		return rc;
	}
	for (unsigned waited = 0;; waited++) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			return fd;
		if (errno == EINTR)
			continue;
		if (errno != EWOULDBLOCK) {
			int rc = -errno;
			say("flock %s: %s", path, strerror(errno));
			close(fd);
			return rc;
		}
		if (waited >= LOCK_WAIT_MS) {
			say("%s is still held after %d s: writer processes of another run are "
			    "still alive",
			    path, LOCK_WAIT_MS / 1000);
			close(fd);
			return -EBUSY;
		}
		struct timespec ms = { 0, 1000000 };
		nanosleep(&ms, NULL);
	}
}

static int parse_num(const char *opt, const char *arg, bool sized, uint64_t *out)
{
	int rc = sized ? size_parse(arg, out) : uint_parse(arg, out);

	if (rc < 0)
		say("%s: bad %s '%s'", opt, sized ? "size" : "number", arg);
	return rc;
}

enum {
	OPT_DEV = 256, OPT_SIZE, OPT_BS, OPT_PROCS, OPT_THREADS, OPT_ENGINE, OPT_IODEPTH,
	OPT_DIRECT, OPT_GEN, OPT_ACK, OPT_COUNT, OPT_SECONDS, OPT_SEED, OPT_ROI, OPT_HELP,
};

static const struct option write_longopts[] = {
	{ "dev", required_argument, NULL, OPT_DEV },
	{ "size", required_argument, NULL, OPT_SIZE },
	{ "bs", required_argument, NULL, OPT_BS },
	{ "procs", required_argument, NULL, OPT_PROCS },
	{ "threads", required_argument, NULL, OPT_THREADS },
	{ "engine", required_argument, NULL, OPT_ENGINE },
	{ "iodepth", required_argument, NULL, OPT_IODEPTH },
	{ "direct", no_argument, NULL, OPT_DIRECT },
	{ "gen", required_argument, NULL, OPT_GEN },
	{ "ack", required_argument, NULL, OPT_ACK },
	{ "count", required_argument, NULL, OPT_COUNT },
	{ "seconds", required_argument, NULL, OPT_SECONDS },
	{ "seed", required_argument, NULL, OPT_SEED },
	{ "region-of-interest", required_argument, NULL, OPT_ROI },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

static const struct option verify_longopts[] = {
	{ "dev", required_argument, NULL, OPT_DEV },
	{ "size", required_argument, NULL, OPT_SIZE },
	{ "bs", required_argument, NULL, OPT_BS },
	{ "ack", required_argument, NULL, OPT_ACK },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

/* Parse the options of a mode into o.  0, or an exit status. */
static int opts_parse(struct opts *o, int argc, char **argv, bool verify)
{
	const char *roi = NULL;
	int c, rc = 0;

	memset(o, 0, sizeof(*o));
	o->bs = 4096;
	o->procs = 1;
	o->threads = 1;
	o->iodepth = 8;
	o->gen = 1;
	o->engine = ENGINE_PWRITE;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", verify ? verify_longopts : write_longopts,
				NULL)) != -1) {
		switch (c) {
		case OPT_DEV: o->dev = optarg; break;
		case OPT_ACK: o->ack_dir = optarg; break;
		case OPT_SIZE: rc = parse_num("--size", optarg, true, &o->size); break;
		case OPT_BS: rc = parse_num("--bs", optarg, true, &o->bs); break;
		case OPT_PROCS: rc = parse_num("--procs", optarg, false, &o->procs); break;
		case OPT_THREADS: rc = parse_num("--threads", optarg, false, &o->threads); break;
		case OPT_IODEPTH: rc = parse_num("--iodepth", optarg, false, &o->iodepth); break;
		case OPT_GEN: rc = parse_num("--gen", optarg, false, &o->gen); break;
		case OPT_SEED:
			rc = parse_num("--seed", optarg, false, &o->seed);
			o->have_seed = true;
			break;
		case OPT_COUNT:
			rc = parse_num("--count", optarg, false, &o->count);
			o->have_count = true;
			break;
		case OPT_SECONDS:
			rc = duration_parse(optarg, &o->seconds_us);
			if (rc < 0)
				say("--seconds: bad duration '%s'", optarg);
			o->have_seconds = true;
			break;
		case OPT_DIRECT: o->direct = true; break;
		case OPT_ROI: roi = optarg; break;
		case OPT_ENGINE:
			if (strcmp(optarg, "pwrite") == 0)
				o->engine = ENGINE_PWRITE;
			else if (strcmp(optarg, "pwritev2") == 0)
				o->engine = ENGINE_PWRITEV2;
			else if (strcmp(optarg, "libaio") == 0)
				o->engine = ENGINE_LIBAIO;
			else if (strcmp(optarg, "mix") == 0)
				o->engine = ENGINE_MIX;
			else {
				say("--engine: '%s' is not one of pwrite, pwritev2, libaio, mix",
				    optarg);
				rc = -EINVAL;
			}
			break;
		case OPT_HELP:
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
		if (rc < 0)
			return EXIT_USAGE;
	}
	if (optind < argc) {
		say("unexpected argument '%s'", argv[optind]);
		return EXIT_USAGE;
	}
	if (o->dev == NULL || o->ack_dir == NULL || o->size == 0) {
		say("--dev, --size (non-zero) and --ack are required");
		usage(stderr);
		return EXIT_USAGE;
	}
	if (o->bs < SECTOR || o->bs % SECTOR != 0 || o->bs > (UINT64_C(1) << 30)) {
		say("--bs %" PRIu64 ": must be a multiple of %d, from %d to 1 GiB", o->bs, SECTOR,
		    SECTOR);
		return EXIT_USAGE;
	}
	uint64_t nblocks = o->size / o->bs;
	if (nblocks == 0) {
		say("--size %" PRIu64 " holds no block of %" PRIu64 " bytes", o->size, o->bs);
		return EXIT_USAGE;
	}
	if (verify)
		return 0;

	if (o->procs < 1 || o->procs > MAX_PROCS || o->threads < 1 || o->threads > MAX_THREADS ||
	    o->procs * o->threads > MAX_WRITERS) {
		say("--procs and --threads must be from 1 to %d and %d, at most %d writers in all",
		    MAX_PROCS, MAX_THREADS, MAX_WRITERS);
		return EXIT_USAGE;
	}
	if (o->iodepth < 1 || o->iodepth > MAX_IODEPTH) {
		say("--iodepth must be from 1 to %d", MAX_IODEPTH);
		return EXIT_USAGE;
	}
	if (o->gen < 1 || o->gen > GEN_MAX) {
		say("--gen must be from 1 to %" PRIu64, GEN_MAX);
		return EXIT_USAGE;
	}
	o->roi_first = 0;
	o->roi_end = nblocks;
	if (roi != NULL) {
		const char *colon = strchr(roi, ':');
		char offs[64];
		uint64_t off, len;

		if (colon == NULL || (size_t)(colon - roi) >= sizeof(offs)) {
			say("--region-of-interest: expected OFF:LEN, got '%s'", roi);
			return EXIT_USAGE;
		}
		memcpy(offs, roi, (size_t)(colon - roi));
		offs[colon - roi] = '\0';
		if (parse_num("--region-of-interest offset", offs, true, &off) < 0 ||
		    parse_num("--region-of-interest length", colon + 1, true, &len) < 0)
			return EXIT_USAGE;
		if (off > o->size || len > o->size - off) {
			say("--region-of-interest %s ends beyond --size", roi);
			return EXIT_USAGE;
		}
		o->roi_first = (off + o->bs - 1) / o->bs;
		o->roi_end = (off + len) / o->bs;
		if (o->roi_end < o->roi_first)
			o->roi_end = o->roi_first;
	}
	if (o->roi_end - o->roi_first < o->procs * o->threads) {
		say("%" PRIu64 " blocks to write are fewer than the %" PRIu64
		    " writers (each needs one)",
		    o->roi_end - o->roi_first, o->procs * o->threads);
		return EXIT_USAGE;
	}
	return 0;
}

/* Kill (SIGTERM) the children still running after one failed. */
static void kill_rest(const pid_t *pids, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (pids[i] > 0)
			kill(pids[i], SIGTERM);
}

static int cmd_write(int argc, char **argv)
{
	struct opts o;
	pid_t *pids = NULL;
	int report[2] = { -1, -1 };
	int lock_fd = -1, fd, status = EXIT_IO, rc;
	unsigned forked = 0, left;
	uint64_t dev_size, total = 0, nw;
	bool failed = false;
	char path[4096];

	rc = opts_parse(&o, argc, argv, false);
	if (rc != 0)
		return rc;
	nw = o.procs * o.threads;

	if (mkdir(o.ack_dir, 0755) < 0 && errno != EEXIST) {
		say("cannot create ack directory %s: %s", o.ack_dir, strerror(errno));
		return EXIT_IO;
	}
	lock_fd = lock_take(o.ack_dir, true);
	if (lock_fd < 0)
		return EXIT_IO;

	/* Check the volume once here so that errors come once and early. */
	if (dev_open(&o, &fd) < 0)
		goto out;
	rc = io_size(fd, &dev_size);
	close(fd);
	if (rc < 0) {
		say("%s: cannot get its size (%s); a regular file or a block device is needed",
		    o.dev, strerror(-rc));
		goto out;
	}
	if (dev_size < o.size) {
		say("%s holds %" PRIu64 " bytes, less than --size %" PRIu64, o.dev, dev_size,
		    o.size);
		goto out;
	}
	for (uint64_t w = 0; w < nw; w++) {
		snprintf(path, sizeof(path), "%s/ack.%" PRIu64 ".%" PRIu64, o.ack_dir, o.gen, w);
		if (access(path, F_OK) == 0) {
			say("%s exists: generation %" PRIu64
			    " was already used in %s; pass a new --gen",
			    path, o.gen, o.ack_dir);
			status = EXIT_USAGE;
			goto out;
		}
	}

	if (!o.have_seed) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		uint64_t s = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
		s ^= (uint64_t)getpid() << 32;
		o.seed = rng_next(&s) >> 1;
	}
	fprintf(stderr, "writer: seed %" PRIu64 ", gen %" PRIu64 ", %" PRIu64 " writers\n",
		o.seed, o.gen, nw);
	if (o.have_seconds)
		deadline_ns = now_ns() + o.seconds_us * 1000u;

	pids = calloc(o.procs, sizeof(*pids));
	if (pids == NULL) {
		say("out of memory");
		goto out;
	}
	if (pipe2(report, O_CLOEXEC) < 0) {
		say("pipe: %s", strerror(errno));
		goto out;
	}
	fflush(NULL);
	pid_t parent = getpid();
	for (; forked < o.procs; forked++) {
		pid_t pid = fork();
		if (pid < 0) {
			say("fork: %s", strerror(errno));
			failed = true;
			break;
		}
		if (pid == 0) {
			/* the child keeps lock_fd open: see the file header */
			close(report[0]);
			free(pids);
			/* Die with the parent, even if it died before prctl. */
			if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
				_exit(EXIT_IO);
			exit(proc_run(&o, forked, report[1]));
		}
		pids[forked] = pid;
	}
	close(report[1]);
	report[1] = -1;
	if (failed)
		kill_rest(pids, forked);

	for (left = forked; left > 0;) {
		int ws;
		pid_t pid = waitpid(-1, &ws, 0);
		if (pid < 0) {
			if (errno == EINTR)
				continue;
			say("waitpid: %s", strerror(errno));
			failed = true;
			break;
		}
		unsigned p;
		for (p = 0; p < forked && pids[p] != pid; p++)
			;
		if (p == forked)
			continue;
		pids[p] = 0;
		left--;
		if (WIFEXITED(ws) && WEXITSTATUS(ws) == 0)
			continue;
		if (!failed) {
			if (WIFSIGNALED(ws))
				say("process %u (pid %d) was killed by signal %d", p, (int)pid,
				    WTERMSIG(ws));
			else
				say("process %u (pid %d) failed", p, (int)pid);
			kill_rest(pids, forked);
		}
		failed = true;
	}
	for (;;) {
		uint64_t n;
		ssize_t got = read(report[0], &n, sizeof(n));
		if (got < 0 && errno == EINTR)
			continue;
		if (got != (ssize_t)sizeof(n))
			break;
		total += n;
	}
	printf("writer: %" PRIu64 " writers, %" PRIu64 " writes acknowledged\n", nw, total);
	status = failed ? EXIT_IO : 0;
out:
	if (report[0] >= 0)
		close(report[0]);
	if (report[1] >= 0)
		close(report[1]);
	free(pids);
	close(lock_fd);
	return status;
}

/* Parse an ack file name "ack.<G>.<w>"; true and *gen if it is one. */
static bool ack_name(const char *name, uint64_t *gen)
{
	char g[32], w[32];
	const char *dot;
	size_t n;

	if (strncmp(name, "ack.", 4) != 0)
		return false;
	name += 4;
	dot = strchr(name, '.');
	if (dot == NULL || (n = (size_t)(dot - name)) == 0 || n >= sizeof(g) ||
	    strlen(dot + 1) >= sizeof(w))
		return false;
	memcpy(g, name, n);
	g[n] = '\0';
	strcpy(w, dot + 1);
	uint64_t wn;
	return uint_parse(g, gen) == 0 && uint_parse(w, &wn) == 0;
}

/* Fold one ack file into high[].  Returns the count of bad records, or
 * -errno (message printed). */
static long ack_load(const struct opts *o, const char *name, uint64_t gen, uint64_t *high,
		     uint64_t nblocks, uint64_t *nrec)
{
	struct ack_rec *recs = NULL;
	char path[4096];
	size_t have = 0;
	long bad = 0;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", o->ack_dir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		bad = -errno;
		say("cannot open %s: %s", path, strerror(errno));
		return bad;
	}
	recs = malloc(ACK_CHUNK * sizeof(*recs));
	if (recs == NULL) {
		bad = -ENOMEM;
		say("out of memory");
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, (char *)recs + have, ACK_CHUNK * sizeof(*recs) - have);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			bad = -errno;
			say("reading %s: %s", path, strerror(errno));
			goto out;
		}
		have += (size_t)n;
		size_t full = have / sizeof(*recs);
		if (n > 0 && full < ACK_CHUNK)
			continue;
		for (size_t i = 0; i < full; i++) {
			uint64_t b = recs[i].block;
			if (b >= nblocks || recs[i].seq >> GEN_SHIFT != gen) {
				if (bad < MAX_BAD_SHOWN)
					printf("verify: %s: record %" PRIu64
					       " (block %" PRIu64 ", seq %#" PRIx64
					       ") is beyond --size or of another generation\n",
					       path, *nrec + i, b, recs[i].seq);
				bad++;
				continue;
			}
			if (recs[i].seq > high[b])
				high[b] = recs[i].seq;
		}
		*nrec += full;
		/* a torn last record (size not a multiple of 16) is ignored */
		have -= full * sizeof(*recs);
		memmove(recs, (char *)recs + full * sizeof(*recs), have);
		if (n == 0)
			break;
	}
out:
	free(recs);
	close(fd);
	return bad;
}

/* Why block b, read into buf, breaks the contract; NULL when it holds. */
static const char *block_check(const struct opts *o, unsigned char *buf, uint64_t b,
			       uint64_t acked, char *why, size_t len)
{
	struct blk_hdr h;
	uint64_t csum, zero = 0, g, c, ag, ac;

	memcpy(&h, buf, sizeof(h));
	if (h.magic != BLK_MAGIC)
		return "no block header (never written, or overwritten by something else)";
	memcpy(buf + offsetof(struct blk_hdr, csum), &zero, sizeof(zero));
	csum = XXH3_64bits(buf, o->bs);
	memcpy(buf + offsetof(struct blk_hdr, csum), &h.csum, sizeof(h.csum));
	if (csum != h.csum)
		return "checksum mismatch (torn or corrupted)";
	if (h.block != b) {
		snprintf(why, len, "holds block %" PRIu64 " instead", h.block);
		return why;
	}
	if (h.bs != o->bs) {
		snprintf(why, len, "was written with --bs %" PRIu32, h.bs);
		return why;
	}
	if (h.seq < acked) {
		seq_split(h.seq, &g, &c);
		seq_split(acked, &ag, &ac);
		snprintf(why, len,
			 "holds seq %" PRIu64 ":%" PRIu64 ", older than acknowledged %" PRIu64
			 ":%" PRIu64 " (lost write)",
			 g, c, ag, ac);
		return why;
	}
	return NULL;
}

static int cmd_verify(int argc, char **argv)
{
	struct opts o;
	uint64_t *high = NULL, nblocks, checked = 0, bad = 0, bad_acks = 0, nfiles = 0;
	uint64_t nrec = 0;
	unsigned char *buf = NULL;
	DIR *d = NULL;
	int lock_fd = -1, fd = -1, status = EXIT_IO, rc;

	rc = opts_parse(&o, argc, argv, true);
	if (rc != 0)
		return rc;
	nblocks = o.size / o.bs;

	lock_fd = lock_take(o.ack_dir, false);
	if (lock_fd < 0 && lock_fd != -ENOENT)
		return EXIT_IO;
	high = calloc(nblocks, sizeof(*high));
	if (high == NULL || posix_memalign((void **)&buf, BUF_ALIGN, o.bs) != 0) {
		say("out of memory for %" PRIu64 " blocks", nblocks);
		goto out;
	}

	d = opendir(o.ack_dir);
	if (d == NULL) {
		say("cannot open ack directory %s: %s", o.ack_dir, strerror(errno));
		goto out;
	}
	for (struct dirent *de; (errno = 0, de = readdir(d)) != NULL;) {
		uint64_t gen;
		if (!ack_name(de->d_name, &gen))
			continue;
		long n = ack_load(&o, de->d_name, gen, high, nblocks, &nrec);
		if (n < 0)
			goto out;
		bad_acks += (uint64_t)n;
		nfiles++;
	}
	if (errno != 0) {
		say("reading ack directory %s: %s", o.ack_dir, strerror(errno));
		goto out;
	}
	if (nfiles == 0) {
		say("no ack files (ack.<gen>.<writer>) in %s: nothing to verify", o.ack_dir);
		goto out;
	}

	fd = open(o.dev, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		say("cannot open %s: %s", o.dev, strerror(errno));
		goto out;
	}
	for (uint64_t b = 0; b < nblocks; b++) {
		char whybuf[160];
		const char *why;

		if (high[b] == 0)
			continue;
		checked++;
		ssize_t n = io_pread_full(fd, buf, o.bs, b * o.bs);
		if (n < 0) {
			say("reading block %" PRIu64 " of %s: %s", b, o.dev, strerror((int)-n));
			goto out;
		}
		if ((size_t)n < o.bs)
			why = "beyond the end of the volume";
		else
			why = block_check(&o, buf, b, high[b], whybuf, sizeof(whybuf));
		if (why == NULL)
			continue;
		if (bad < MAX_BAD_SHOWN)
			printf("verify: block %" PRIu64 " (offset %" PRIu64 "): %s\n", b, b * o.bs,
			       why);
		else if (bad == MAX_BAD_SHOWN)
			printf("verify: (further bad blocks not shown)\n");
		bad++;
	}
	fprintf(stderr, "verify: %" PRIu64 " acks read from %" PRIu64 " files in %s\n", nrec,
		nfiles, o.ack_dir);
	if (bad_acks > 0)
		printf("verify: %" PRIu64 " ack records name no block of --size\n", bad_acks);
	printf("verify: %" PRIu64 " blocks checked, %" PRIu64 " bad\n", checked, bad);
	status = bad == 0 && bad_acks == 0 ? 0 : EXIT_IO;
out:
	if (fd >= 0)
		close(fd);
	if (d != NULL)
		closedir(d);
	free(buf);
	free(high);
	if (lock_fd >= 0)
		close(lock_fd);
	return status;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "write") == 0)
		return cmd_write(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "verify") == 0)
		return cmd_verify(argc - 1, argv + 1);
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		usage(stdout);
		return 0;
	}
	usage(stderr);
	return EXIT_USAGE;
}
