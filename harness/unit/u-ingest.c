/*
 * u-ingest: the copier's reading of the dirty log (copier/ingest.c) against
 * real segment files and a real state store: records past the durable
 * offset are collected once, and ingest_trim gives back the space of the
 * records every checkpoint has recorded without losing one that follows.
 *
 * A punch that reached past the durable offset would leave zeros where a
 * reader starts, and a reader stops at the first zero slot: every record
 * after it would be lost (a region written but never copied again).  So the
 * test appends records after a trim and reads them back both through the
 * same ingest and through a new one that loads the durable offsets, as a
 * restarted copier does.
 *
 * Segments are written here in the format lib/dlog.h documents (header and
 * records through dlog_hdr_encode and dlog_rec_encode, one pwrite for many
 * records), which keeps 40,000 records quick; the writer's own appends are
 * u-dlog's.  The writer is this process, so its segment is live.
 */
#include "../../copier/ingest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctl.h"
#include "dlog.h"
#include "state.h"
#include "scratch.h"
#include "tap.h"

#define SESSION UINT64_C(0x5e55)
#define SALT UINT64_C(0x0123456789abcdef)

static char scratch[] = "/var/tmp/u-ingest.XXXXXX";

/* A segment of this process with no record yet; its fd. */
static int seg_create_of(const char *path, uint64_t session, pid_t pid)
{
	struct dlog_hdr h = { .magic = DLOG_MAGIC, .version = DLOG_VERSION,
			      .hdr_size = DLOG_HDR_SIZE, .session_id = session, .salt = SALT,
			      .pid = pid, .start = ctl_proc_start(pid) };
	uint8_t buf[DLOG_HDR_SIZE];
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	if (fd < 0)
		return -1;
	dlog_hdr_encode(&h, buf);
	if (pwrite(fd, buf, sizeof(buf), 0) != (ssize_t)sizeof(buf)) {
		close(fd);
		return -1;
	}
	return fd;
}

static int seg_create(const char *path)
{
	return seg_create_of(path, SESSION, getpid());
}

/* Append n records from slot seq (1 is the first): pair 0, one region
 * each, regions first, first + 1, ... */
static int seg_append(int fd, uint64_t seq, uint64_t n, uint64_t first)
{
	uint8_t *buf = malloc(n * DLOG_REC_SIZE);
	ssize_t w;

	if (buf == NULL)
		return -1;
	for (uint64_t i = 0; i < n; i++) {
		struct dlog_rec r = { .seq = seq + i, .pair = 0, .count = 1, .first = first + i };

		dlog_rec_encode(&r, SALT, buf + i * DLOG_REC_SIZE);
	}
	w = pwrite(fd, buf, n * DLOG_REC_SIZE, (off_t)(DLOG_HDR_SIZE + (seq - 1) * DLOG_REC_SIZE));
	free(buf);
	return w == (ssize_t)(n * DLOG_REC_SIZE) ? 0 : -1;
}

static int record_txn(struct state *st, DB_TXN *txn, void *arg)
{
	return ingest_record(arg, st, txn);
}

/* A checkpoint's part: collect, record in a transaction, done.  The
 * records collected, or -1. */
static long checkpoint(struct ingest *in, struct state *st)
{
	long n;

	if (ingest_collect(in, st) < 0)
		return -1;
	n = (long)in->nrecs;
	if (state_txn(st, record_txn, in) < 0) {
		ingest_undo(in);
		return -1;
	}
	ingest_done(in);
	return n;
}

static void ingest_init(struct ingest *in, const char *dir)
{
	memset(in, 0, sizeof(*in));
	in->dir = dir;
	in->session_id = SESSION;
	in->npairs = 1;
	in->nregions[0] = UINT64_C(1) << 30;
}

/* Bytes of fd's file allocated on disk. */
static uint64_t allocated(int fd)
{
	struct stat sb;

	return fstat(fd, &sb) == 0 ? (uint64_t)sb.st_blocks * 512 : UINT64_MAX;
}

/*
 * Segments of another session in the log directory: a leftover (its writer
 * gone) is removed; one whose writer still runs is left alone, for it
 * belongs to a session that replaced this one's directory under it.
 */
static void test_foreign(struct state *st, const char *logdir)
{
	char live[700], dead[700];
	struct ingest in;
	pid_t child;
	long got;
	int fd, status, rc;

	child = fork();
	if (child == 0)
		_exit(0);
	waitpid(child, &status, 0);
	snprintf(live, sizeof(live), "%s/%d-1.seg", logdir, (int)getpid());
	snprintf(dead, sizeof(dead), "%s/%d-2.seg", logdir, (int)child);
	fd = seg_create_of(live, SESSION + 1, getpid());
	rc = fd >= 0 ? seg_append(fd, 1, 10, 0) : -1;
	if (fd >= 0)
		close(fd);
	fd = seg_create_of(dead, SESSION + 1, child);
	rc = rc ? rc : fd >= 0 ? seg_append(fd, 1, 10, 0) : -1;
	if (fd >= 0)
		close(fd);
	ok(rc == 0, "two segments of another session: one of this live process, one of an "
	   "exited child");
	ingest_init(&in, scratch);
	got = checkpoint(&in, st);
	ok(got == 0 && access(dead, F_OK) != 0 && access(live, F_OK) == 0,
	   "  a checkpoint collects neither, removes the exited writer's and leaves the live "
	   "writer's (%ld records, dead %s, live %s)", got, access(dead, F_OK) ? "gone" : "kept",
	   access(live, F_OK) ? "gone" : "kept");
	unlink(live);
	ingest_release(&in);
}

int main(void)
{
	char logdir[600], path[700];
	struct ingest in, in2;
	struct state st;
	uint64_t n1 = 40000, n2 = 100, end, durable, punched, before, size;
	struct dlog_hdr h;
	uint8_t hbuf[DLOG_HDR_SIZE];
	struct stat sb;
	long got;
	off_t data;
	int fd, rc;

	if (mkdtemp(scratch) == NULL) {
		ok(0, "mkdtemp %s", scratch);
		return tap_done();
	}
	snprintf(logdir, sizeof(logdir), "%s/log", scratch);
	rc = mkdir(logdir, 0700);
	rc = rc ? rc : state_open(&st, scratch, STATE_CREATE);
	ok(rc == 0, "a state store and a log directory (rc %d)", rc);
	if (rc < 0)
		goto out;
	snprintf(path, sizeof(path), "%s/%d-%llu.seg", logdir, (int)getpid(),
		 (unsigned long long)ctl_proc_start(getpid()));
	fd = seg_create(path);
	ok(fd >= 0 && seg_append(fd, 1, n1, 0) == 0, "a live segment of %llu records",
	   (unsigned long long)n1);
	if (fd < 0)
		goto close_st;

	ingest_init(&in, scratch);
	got = checkpoint(&in, &st);
	durable = DLOG_HDR_SIZE + n1 * DLOG_REC_SIZE;
	ok(got == (long)n1 && in.nsegs == 1 && in.segs[0].off == durable,
	   "a checkpoint collects all of them and records offset %llu (%ld records, offset %llu)",
	   (unsigned long long)durable, got, in.nsegs ? (unsigned long long)in.segs[0].off : 0ULL);

	/* records the writer appends meanwhile, past the durable offset */
	ok(seg_append(fd, n1 + 1, n2, 500000) == 0, "%llu more records appended, not yet read",
	   (unsigned long long)n2);
	/* the trim: up to the durable offset's 4 KiB boundary, header kept */
	end = durable & ~(uint64_t)(DLOG_HDR_SIZE - 1);
	fstat(fd, &sb);
	size = (uint64_t)sb.st_size;
	before = allocated(fd);
	ok(ingest_trim_due(&in), "past INGEST_TRIM_BYTES of recorded records, a trim is due");
	punched = ingest_trim(&in);
	fstat(fd, &sb);
	ok(punched == end - DLOG_HDR_SIZE && (uint64_t)sb.st_size == size,
	   "  it punches out %llu bytes, the header to the durable offset's block (%llu); the size "
	   "stays %llu (%llu)", (unsigned long long)(end - DLOG_HDR_SIZE),
	   (unsigned long long)punched, (unsigned long long)size, (unsigned long long)sb.st_size);
	if (punched == 0) {
		skip("this file system cannot punch holes: the rest needs one");
		goto close_fd;
	}
	data = lseek(fd, DLOG_HDR_SIZE, SEEK_DATA);
	ok(data >= (off_t)end && allocated(fd) + (end - DLOG_HDR_SIZE) <= before,
	   "  the punched bytes hold no data (next data at %lld) and are no longer allocated "
	   "(%llu bytes, %llu before)", (long long)data, (unsigned long long)allocated(fd),
	   (unsigned long long)before);
	ok(pread(fd, hbuf, sizeof(hbuf), 0) == (ssize_t)sizeof(hbuf) &&
		   dlog_hdr_decode(hbuf, sizeof(hbuf), &h) == 0 && h.session_id == SESSION,
	   "  the header is intact");
	ok(!ingest_trim_due(&in) && ingest_trim(&in) == 0, "  and no trim is due again yet");

	/* the records past the durable offset are read: by the same ingest ... */
	ingest_init(&in2, scratch);
	got = checkpoint(&in, &st);
	ok(got == (long)n2 && in.segs[0].off == durable + n2 * DLOG_REC_SIZE,
	   "the next checkpoint collects exactly the %llu appended before the trim (%ld)",
	   (unsigned long long)n2, got);
	/* ... and by a new one, as a restarted copier: from the durable offset */
	rc = seg_append(fd, n1 + n2 + 1, n2, 600000);
	rc = rc ? rc : ingest_collect(&in2, &st);
	ok(rc == 0 && in2.nrecs == n2 && in2.recs[0].first == 600000 &&
		   in2.recs[n2 - 1].first == 600000 + n2 - 1,
	   "  %llu appended after it: a new ingest (a restarted copier) starts at the durable "
	   "offset, past the punched part, and collects them (%zu, first region %llu, rc %d)",
	   (unsigned long long)n2, in2.nrecs, in2.nrecs ? (unsigned long long)in2.recs[0].first : 0ULL,
	   rc);
	ingest_undo(&in2);

	/* a second trim starts where the first ended (the checkpoint also
	 * collects the records only in2 has read so far) */
	rc = seg_append(fd, n1 + 2 * n2 + 1, n1, 700000);
	got = rc ? -1 : checkpoint(&in, &st);
	ok(got == (long)(n1 + n2) && ingest_trim_due(&in),
	   "another %llu records recorded (%ld): a trim is due again", (unsigned long long)(n1 + n2),
	   got);
	durable = in.segs[0].off;
	punched = ingest_trim(&in);
	ok(punched == (durable & ~(uint64_t)(DLOG_HDR_SIZE - 1)) - end,
	   "  it punches only what the first left (%llu bytes)", (unsigned long long)punched);
	ingest_release(&in2);
	test_foreign(&st, logdir);
close_fd:
	ingest_release(&in);
	close(fd);
close_st:
	state_close(&st);
out:
	rm_tree(scratch);
	return tap_done();
}
