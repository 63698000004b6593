/*
 * ingest: dirty-log segments into the durable dirty set.  See ingest.h.
 */
#include "ingest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"
#include "crash.h"
#include "dlog.h"
#include "io.h"
#include "log.h"

static struct ingest_seg *seg_find(struct ingest *in, const char *name)
{
	for (size_t i = 0; i < in->nsegs; i++)
		if (strcmp(in->segs[i].name, name) == 0)
			return &in->segs[i];
	return NULL;
}

static int rec_push(struct ingest *in, const struct dlog_rec *r)
{
	if (in->nrecs == in->cap) {
		size_t cap = in->cap ? in->cap * 2 : 1024;
		struct ingest_rec *v = realloc(in->recs, cap * sizeof(*v));
		if (v == NULL)
			return -ENOMEM;
		in->recs = v;
		in->cap = cap;
	}
	in->recs[in->nrecs++] = (struct ingest_rec){ .pair = r->pair, .count = r->count,
						    .first = r->first };
	return 0;
}

struct scan_arg {
	struct ingest *in;
	int rc;
	bool out_of_range;
};

static void on_rec(const struct dlog_rec *r, void *arg)
{
	struct scan_arg *a = arg;

	if (r->pair >= a->in->npairs || r->first >= a->in->nregions[r->pair] ||
	    r->count > a->in->nregions[r->pair] - r->first) {
		a->out_of_range = true;
		return;
	}
	if (a->rc == 0 && !a->out_of_range)
		a->rc = rec_push(a->in, r);
}

/* Is the writer of a segment still running? */
static bool writer_alive(const struct dlog_hdr *h)
{
	if (h->pid <= 0)
		return false;
	if (kill(h->pid, 0) < 0 && errno == ESRCH)
		return false;
	return h->start == 0 || ctl_proc_start(h->pid) == h->start;
}

static int read_segment(struct ingest *in, struct ingest_seg *sg, int fd)
{
	uint8_t hbuf[DLOG_HDR_SIZE], *buf = NULL;
	struct scan_arg a = { .in = in };
	struct dlog_hdr h;
	struct dlog_scan res;
	struct stat sb;
	uint64_t len;
	bool alive;
	ssize_t n;
	int rc = 0;

	n = io_pread_full(fd, hbuf, sizeof(hbuf), 0);
	if (n < 0)
		return (int)n;
	if (n < (ssize_t)sizeof(hbuf) || dlog_hdr_decode(hbuf, (size_t)n, &h) < 0) {
		/* No valid header: either its writer is creating it right now
		 * (the name says who), or it died before the header was durable,
		 * and then the segment holds no record it relied on (the header
		 * is synced before any append). */
		struct dlog_hdr who = { 0 };
		int pid = 0;
		unsigned long long start = 0;

		sg->new_off = sg->off;
		if (sscanf(sg->name, "%d-%llu.seg", &pid, &start) == 2) {
			who.pid = pid;
			who.start = start;
		}
		sg->finished = !writer_alive(&who);
		return 0;
	}
	if (h.session_id != in->session_id) {
		/* Another session's: a leftover once its writer is gone.  A live
		 * one is never removed: it means this directory was replaced
		 * under a copier of the old session, whose ingest would
		 * otherwise delete the new session's segments. */
		sg->new_off = sg->off;
		sg->finished = !writer_alive(&h);
		return 0;
	}
	alive = writer_alive(&h); /* before reading: a dead writer appends no more */
	sg->lost = h.lost_pairs;
	sg->events = h.lost_events;
	if (sg->off < DLOG_HDR_SIZE)
		sg->off = DLOG_HDR_SIZE;
	sg->new_off = sg->off;
	/* The whole unread part at once: a bad record at the end of a chunk
	 * would look torn when records follow it in the next one. */
	if (fstat(fd, &sb) < 0)
		return -errno;
	if ((uint64_t)sb.st_size <= sg->new_off) {
		sg->finished = !alive;
		return 0;
	}
	len = (uint64_t)sb.st_size - sg->new_off;
	if (len > SIZE_MAX)
		return -EFBIG;
	buf = malloc((size_t)len);
	if (buf == NULL)
		return -ENOMEM;
	n = io_pread_full(fd, buf, (size_t)len, sg->new_off);
	if (n < 0) {
		rc = (int)n;
		goto out;
	}
	dlog_scan(buf, (size_t)n, h.salt, (sg->new_off - DLOG_HDR_SIZE) / DLOG_REC_SIZE + 1, on_rec, &a,
		  &res);
	if (a.rc < 0) {
		rc = a.rc;
		goto out;
	}
	/* A live writer may be appending while we read: a record half copied
	 * when a later one is complete reads as corrupt.  Take the valid
	 * prefix and read the rest at the next checkpoint; only a segment whose
	 * writer is gone is stable enough to call corrupted. */
	if (a.out_of_range || (res.end == DLOG_END_CORRUPT && !alive)) {
		if (!in->quiet)
			log_err("dirty log %s/log/%s is corrupted at offset %llu: ingest stops",
				in->dir, sg->name,
				(unsigned long long)(sg->new_off +
						     (a.out_of_range ? res.valid : res.bad_off)));
		rc = -EBADMSG;
		goto out;
	}
	sg->new_off += res.valid;
	sg->finished = !alive;
out:
	free(buf);
	return rc;
}

void ingest_reader(struct ingest *in, const char *dir, const struct sess *s, bool quiet)
{
	*in = (struct ingest){ .dir = dir, .session_id = s->id, .npairs = s->npairs,
			       .quiet = quiet };
	for (uint32_t i = 0; i < s->npairs; i++)
		in->nregions[i] = region_count(sess_capacity(&s->pairs[i]), s->region_shift);
}

int ingest_collect(struct ingest *in, struct state *st)
{
	char path[4200];
	struct dirent *de;
	DIR *d;
	int rc = 0;

	in->nrecs = 0;
	in->lost_new = 0;
	for (size_t i = 0; i < in->nsegs; i++)
		in->segs[i].present = false;
	snprintf(path, sizeof(path), "%s/log", in->dir);
	d = opendir(path);
	if (d == NULL)
		return errno == ENOENT ? 0 : -errno;
	while (rc == 0 && (de = readdir(d)) != NULL) {
		struct ingest_seg *sg;
		size_t len = strlen(de->d_name);
		char seg_path[4300];
		int fd;

		if (len < 5 || len >= sizeof(sg->name) || strcmp(de->d_name + len - 4, ".seg") != 0)
			continue;
		sg = seg_find(in, de->d_name);
		if (sg == NULL) {
			struct ingest_seg *v = realloc(in->segs, (in->nsegs + 1) * sizeof(*v));
			uint64_t off = 0;

			if (v == NULL) {
				rc = -ENOMEM;
				break;
			}
			in->segs = v;
			sg = &v[in->nsegs++];
			memset(sg, 0, sizeof(*sg));
			snprintf(sg->name, sizeof(sg->name), "%s", de->d_name);
			rc = state_ingest_get_txn(st, sg->name, &off, &sg->lost_seen);
			if (rc == -ENOENT)
				rc = 0;
			if (rc < 0)
				break;
			sg->off = off;
		}
		sg->present = true;
		sg->finished = false;
		snprintf(seg_path, sizeof(seg_path), "%s/%s", path, de->d_name);
		fd = open(seg_path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			if (errno == ENOENT)
				continue;
			rc = -errno;
			break;
		}
		rc = read_segment(in, sg, fd);
		close(fd);
		if (rc == 0 && sg->events > sg->lost_seen)
			in->lost_new |= sg->lost; /* a loss not handled yet */
	}
	closedir(d);
	return rc;
}

int ingest_record(struct ingest *in, struct state *st, DB_TXN *txn)
{
	for (size_t i = 0; i < in->nsegs; i++) {
		struct ingest_seg *sg = &in->segs[i];
		int rc;

		if (!sg->present)
			continue;
		if (sg->finished)
			rc = state_ingest_del(st, txn, sg->name);
		else if (sg->new_off != sg->off || sg->events > sg->lost_seen)
			rc = state_ingest_put2(st, txn, sg->name, sg->new_off, sg->events);
		else
			rc = 0;
		if (rc < 0)
			return rc;
	}
	return 0;
}

void ingest_done(struct ingest *in)
{
	size_t k = 0;

	for (size_t i = 0; i < in->nsegs; i++) {
		struct ingest_seg *sg = &in->segs[i];

		if (sg->present && sg->finished) {
			char path[4300];

			snprintf(path, sizeof(path), "%s/log/%s", in->dir, sg->name);
			CRASH_POINT("copier.segment-unlink.before");
			unlink(path);
			continue;
		}
		if (!sg->present)
			continue; /* gone from the directory */
		sg->off = sg->new_off;
		if (sg->events > sg->lost_seen)
			sg->lost_seen = sg->events;
		in->segs[k++] = *sg;
	}
	in->nsegs = k;
	in->nrecs = 0;
}

/* Where a punch of sg would end: its durable offset's block boundary. */
static uint64_t trim_end(const struct ingest_seg *sg)
{
	return sg->off & ~(uint64_t)(DLOG_HDR_SIZE - 1);
}

static bool seg_trim_due(const struct ingest_seg *sg)
{
	uint64_t from = sg->trimmed > DLOG_HDR_SIZE ? sg->trimmed : DLOG_HDR_SIZE;

	return sg->present && !sg->finished && trim_end(sg) >= from + INGEST_TRIM_BYTES;
}

bool ingest_trim_due(const struct ingest *in)
{
	if (in->no_punch)
		return false;
	for (size_t i = 0; i < in->nsegs; i++)
		if (seg_trim_due(&in->segs[i]))
			return true;
	return false;
}

uint64_t ingest_trim(struct ingest *in)
{
	uint64_t punched = 0;

	for (size_t i = 0; i < in->nsegs && !in->no_punch; i++) {
		struct ingest_seg *sg = &in->segs[i];
		uint64_t end = trim_end(sg);
		char path[4300];
		int fd;

		if (!seg_trim_due(sg))
			continue;
		snprintf(path, sizeof(path), "%s/log/%s", in->dir, sg->name);
		fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			continue; /* gone (its writer ended), or not ours to write */
		if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, DLOG_HDR_SIZE,
			      (off_t)(end - DLOG_HDR_SIZE)) == 0) {
			punched += end - (sg->trimmed > DLOG_HDR_SIZE ? sg->trimmed : DLOG_HDR_SIZE);
			sg->trimmed = end;
		} else if (errno == EOPNOTSUPP || errno == ENOSYS) {
			in->no_punch = true;
		}
		close(fd);
	}
	return punched;
}

void ingest_undo(struct ingest *in)
{
	for (size_t i = 0; i < in->nsegs; i++)
		in->segs[i].new_off = in->segs[i].off;
	in->nrecs = 0;
}

void ingest_release(struct ingest *in)
{
	free(in->segs);
	free(in->recs);
	in->segs = NULL;
	in->recs = NULL;
	in->nsegs = in->nrecs = in->cap = 0;
}
