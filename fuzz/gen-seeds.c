/*
 * gen-seeds: write the fuzz targets' seed inputs.
 *
 *   gen-seeds DIR      writes DIR/<target>/<name> for every target
 *
 * The seeds are committed under fuzz/seeds/; `make fuzz-seeds` rewrites
 * them with this program (after a format change, say).  Every seed is made
 * with the project's own encoders (dlog_rec_encode, dlog_hdr_encode,
 * sess_encode) and fixed salts and ids, so the output is the same on every
 * run.  Each target's input format is described at the top of its .c; the
 * seeds cover the accepted path and each way of being refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"
#include "dlog.h"
#include "sess.h"

#define MAX_SEED (64 * 1024)

struct seed {
	uint8_t b[MAX_SEED];
	size_t n;
};

static const char *outdir;
static int failed;

static void put(struct seed *s, const void *p, size_t n)
{
	if (s->n + n > MAX_SEED) {
		fprintf(stderr, "gen-seeds: seed too large\n");
		exit(1);
	}
	memcpy(s->b + s->n, p, n);
	s->n += n;
}

static void put_le(struct seed *s, uint64_t v, size_t n)
{
	uint8_t b[8];

	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	put(s, b, n);
}

static void put_u8(struct seed *s, unsigned v)
{
	put_le(s, v, 1);
}

/* A number as the targets' fz_num reads it (fuzz.h). */
static void put_num(struct seed *s, uint64_t v)
{
	if (v <= 0xff) {
		put_u8(s, 0);
		put_u8(s, (unsigned)v);
	} else if (v <= 0xffff) {
		put_u8(s, 1);
		put_le(s, v, 2);
	} else if (v >= UINT64_MAX - 0xff) {
		put_u8(s, 3);
		put_u8(s, (unsigned)(UINT64_MAX - v));
	} else {
		put_u8(s, 2);
		put_le(s, v, 8);
	}
}

static void put_str(struct seed *s, const char *str)
{
	put(s, str, strlen(str));
}

static void mkdirs(const char *target)
{
	char path[4096];

	if (mkdir(outdir, 0755) < 0 && errno != EEXIST)
		goto fail;
	snprintf(path, sizeof(path), "%s/%s", outdir, target);
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		goto fail;
	return;
fail:
	fprintf(stderr, "gen-seeds: mkdir %s: %s\n", path, strerror(errno));
	exit(1);
}

static void emit(const char *target, const char *name, const struct seed *s)
{
	char path[4096];
	FILE *f;

	mkdirs(target);
	snprintf(path, sizeof(path), "%s/%s/%s", outdir, target, name);
	f = fopen(path, "wb");
	if (f == NULL || fwrite(s->b, 1, s->n, f) != s->n || fclose(f) != 0) {
		fprintf(stderr, "gen-seeds: %s: %s\n", path, strerror(errno));
		failed = 1;
	}
}

/* ---- dlog ---- */

#define DLOG_SALT UINT64_C(0x5eed5a17c0ffee01)
#define HDR_LEN 64

static void dlog_hdr(struct seed *s, uint64_t salt, uint64_t lost, bool break_checksum)
{
	static uint8_t h[DLOG_HDR_SIZE];
	struct dlog_hdr hdr = { .session_id = UINT64_C(0x1234567890abcdef), .salt = salt,
				.pid = 4242, .start = 987654, .lost_pairs = lost };

	dlog_hdr_encode(&hdr, h);
	if (break_checksum)
		h[HDR_LEN - 1] ^= 0x40;
	put(s, h, HDR_LEN);
}

static void dlog_rec(struct seed *s, uint64_t salt, uint64_t seq, uint32_t pair, uint64_t first,
		     uint32_t count, bool break_checksum)
{
	uint8_t r[DLOG_REC_SIZE];
	struct dlog_rec rec = { .seq = seq, .pair = pair, .count = count, .first = first };

	dlog_rec_encode(&rec, salt, r);
	if (break_checksum)
		r[DLOG_REC_SIZE - 3] ^= 0x11;
	put(s, r, sizeof(r));
}

static void dlog_raw_prefix(struct seed *s, unsigned fix, uint64_t salt, uint64_t first_seq)
{
	put_u8(s, fix << 2);
	put_le(s, salt, 8);
	put_le(s, first_seq, 8);
}

static void gen_dlog(void)
{
	static const uint8_t zeros[4 * DLOG_REC_SIZE];
	struct seed s;

	s.n = 0; /* a clean segment: header, three records, preallocated zeros */
	put_u8(&s, 1);
	dlog_hdr(&s, DLOG_SALT, 0, false);
	dlog_rec(&s, DLOG_SALT, 1, 0, 0, 1, false);
	dlog_rec(&s, DLOG_SALT, 2, 0, 17, 3, false);
	dlog_rec(&s, DLOG_SALT, 3, 1, 1000000, 64, false);
	put(&s, zeros, sizeof(zeros));
	emit("dlog", "hdr-three-records", &s);

	s.n = 0; /* torn append: the last record only partly written */
	put_u8(&s, 1);
	dlog_hdr(&s, DLOG_SALT, 0, false);
	dlog_rec(&s, DLOG_SALT, 1, 0, 5, 1, false);
	dlog_rec(&s, DLOG_SALT, 2, 0, 9, 2, false);
	dlog_rec(&s, DLOG_SALT, 3, 0, 11, 1, false);
	s.n -= 15;
	emit("dlog", "hdr-torn-partial-record", &s);

	s.n = 0; /* torn: a whole but bad last record, zeros after it */
	put_u8(&s, 1);
	dlog_hdr(&s, DLOG_SALT, 0, false);
	dlog_rec(&s, DLOG_SALT, 1, 2, 40, 8, false);
	dlog_rec(&s, DLOG_SALT, 2, 2, 48, 8, true);
	put(&s, zeros, sizeof(zeros));
	emit("dlog", "hdr-torn-bad-last", &s);

	s.n = 0; /* corrupt: a bad record with data after it */
	put_u8(&s, 1);
	dlog_hdr(&s, DLOG_SALT, 0, false);
	dlog_rec(&s, DLOG_SALT, 1, 0, 1, 1, false);
	dlog_rec(&s, DLOG_SALT, 2, 0, 2, 1, true);
	dlog_rec(&s, DLOG_SALT, 3, 0, 3, 1, false);
	emit("dlog", "hdr-corrupt-middle", &s);

	s.n = 0; /* a record copied from another segment (other salt) */
	put_u8(&s, 1);
	dlog_hdr(&s, DLOG_SALT, 0, false);
	dlog_rec(&s, DLOG_SALT, 1, 0, 1, 1, false);
	dlog_rec(&s, DLOG_SALT ^ 1, 2, 0, 2, 1, false);
	emit("dlog", "hdr-foreign-record", &s);

	s.n = 0; /* a record shifted to another slot (wrong seq) */
	put_u8(&s, 1);
	dlog_hdr(&s, DLOG_SALT, 0, false);
	dlog_rec(&s, DLOG_SALT, 1, 0, 1, 1, false);
	dlog_rec(&s, DLOG_SALT, 3, 0, 2, 1, false);
	put(&s, zeros, DLOG_REC_SIZE);
	emit("dlog", "hdr-shifted-record", &s);

	s.n = 0; /* a zero slot (not yet written by a concurrent append) ends the prefix */
	put_u8(&s, 1);
	dlog_hdr(&s, DLOG_SALT, 0, false);
	dlog_rec(&s, DLOG_SALT, 1, 0, 1, 1, false);
	put(&s, zeros, DLOG_REC_SIZE);
	dlog_rec(&s, DLOG_SALT, 3, 0, 3, 1, false);
	emit("dlog", "hdr-zero-slot-then-record", &s);

	s.n = 0; /* full disk: pairs 0 and 5 lost their tracking */
	put_u8(&s, 1);
	dlog_hdr(&s, DLOG_SALT, (UINT64_C(1) << 0) | (UINT64_C(1) << 5), false);
	dlog_rec(&s, DLOG_SALT, 1, 5, 77, 1, false);
	emit("dlog", "hdr-lost-pairs", &s);

	s.n = 0; /* a damaged header */
	put_u8(&s, 1);
	dlog_hdr(&s, DLOG_SALT, 0, true);
	dlog_rec(&s, DLOG_SALT, 1, 0, 1, 1, false);
	emit("dlog", "hdr-bad-checksum", &s);

	s.n = 0; /* a header cut short */
	put_u8(&s, 1);
	dlog_hdr(&s, DLOG_SALT, 0, false);
	s.n -= 9;
	emit("dlog", "hdr-short", &s);

	s.n = 0; /* repairs on: damaged header and record checksums are recomputed */
	put_u8(&s, 1 | 2 | (4 << 2));
	dlog_hdr(&s, DLOG_SALT, 0, true);
	dlog_rec(&s, DLOG_SALT, 1, 0, 100, 2, true);
	dlog_rec(&s, DLOG_SALT, 2, 0, 200, 2, true);
	dlog_rec(&s, DLOG_SALT, 3, 3, 300, 2, true);
	dlog_rec(&s, DLOG_SALT, 4, 3, 400, 2, true);
	emit("dlog", "hdr-repaired", &s);

	s.n = 0; /* ingest resuming at record 7 */
	dlog_raw_prefix(&s, 0, DLOG_SALT, 7);
	for (uint64_t seq = 7; seq < 12; seq++)
		dlog_rec(&s, DLOG_SALT, seq, (uint32_t)seq % 3, seq * 1000, (uint32_t)seq, false);
	put(&s, zeros, DLOG_REC_SIZE);
	emit("dlog", "raw-resume-at-7", &s);

	s.n = 0; /* valid checksum, count 0 */
	dlog_raw_prefix(&s, 3, 42, 1);
	dlog_rec(&s, 42, 1, 0, 10, 1, false);
	dlog_rec(&s, 42, 2, 0, 11, 0, false);
	dlog_rec(&s, 42, 3, 0, 12, 1, false);
	emit("dlog", "raw-count-zero", &s);

	s.n = 0; /* valid checksums; the last range ends exactly at 2^64, which overflows */
	dlog_raw_prefix(&s, 3, 42, 1);
	dlog_rec(&s, 42, 1, 0, UINT64_MAX - UINT32_MAX, UINT32_MAX, false);
	dlog_rec(&s, 42, 2, 0, UINT64_MAX - 1, 1, false);
	dlog_rec(&s, 42, 3, 0, UINT64_MAX, 1, false);
	emit("dlog", "raw-range-edges", &s);

	s.n = 0; /* seq wrapping past UINT64_MAX */
	dlog_raw_prefix(&s, 0, 0, UINT64_MAX - 1);
	dlog_rec(&s, 0, UINT64_MAX - 1, 0, 1, 1, false);
	dlog_rec(&s, 0, UINT64_MAX, 0, 1, 1, false);
	dlog_rec(&s, 0, 0, 0, 1, 1, false);
	emit("dlog", "raw-seq-wrap", &s);

	s.n = 0; /* nothing but the prefix */
	dlog_raw_prefix(&s, 0, 1, 1);
	emit("dlog", "raw-empty", &s);
}

/* ---- sess ---- */

static void sess_fill(struct sess *s, uint32_t state, uint32_t shift, uint32_t flags)
{
	memset(s, 0, sizeof(*s));
	s->version = SESS_VERSION;
	s->state = state;
	s->region_shift = shift;
	s->flags = flags;
	s->id = UINT64_C(0xfeedfacecafebeef);
	s->created = 1700000000;
}

static void pair_file(struct sess_pair *p, uint64_t size)
{
	p->size = size;
	p->target_size = size + 4096;
	p->reserve = 0;
	p->source_id = (struct sess_ident){ .kind = SESS_KIND_FILE, .dev = 2049, .ino = 131 };
	p->target_id = (struct sess_ident){ .kind = SESS_KIND_FILE, .dev = 2049, .ino = 132 };
}

static void pair_block(struct sess_pair *p, uint64_t size)
{
	p->size = size;
	p->target_size = size;
	p->reserve = 1 << 20;
	p->source_id = (struct sess_ident){ .kind = SESS_KIND_BLOCK, .rdev = 0x700 };
	p->target_id = (struct sess_ident){ .kind = SESS_KIND_BLOCK, .rdev = 0x701 };
}

static void emit_sess(const char *name, const struct sess *s, unsigned mode, size_t cut)
{
	struct seed out;
	uint8_t *enc;
	size_t len;

	if (sess_encode(s, &enc, &len) < 0) {
		fprintf(stderr, "gen-seeds: sess_encode failed\n");
		exit(1);
	}
	out.n = 0;
	put_u8(&out, mode);
	put(&out, enc, len - cut);
	emit("sess", name, &out);
	free(enc);
}

static void add_pair(struct sess *s, const char *src, const char *tgt)
{
	if (sess_add_pair(s, src, tgt) < 0) {
		fprintf(stderr, "gen-seeds: sess_add_pair failed\n");
		exit(1);
	}
}

static void gen_sess(void)
{
	static char longpath[SESS_PATH_MAX + 1];
	struct sess s;
	struct seed d;

	sess_fill(&s, SESS_COPYING, 16, 0);
	add_pair(&s, "/srv/data/vol.img", "/mnt/new/vol.img");
	pair_file(&s.pairs[0], 5 * 1048576 + 12345);
	emit_sess("one-file-pair", &s, 0, 0);
	emit_sess("truncated", &s, 0, 11);
	emit_sess("truncated-repaired", &s, 3, 11);
	s.region_shift = 11; /* below 4 KiB */
	emit_sess("region-too-small-repaired", &s, 3, 0);
	s.region_shift = 16;
	s.state = SESS_NSTATES;
	emit_sess("unknown-state-repaired", &s, 3, 0);
	s.state = SESS_COPYING;
	s.pairs[0].source_id.kind = 3;
	emit_sess("unknown-kind-repaired", &s, 3, 0);
	sess_release(&s);

	sess_fill(&s, SESS_SYNCED, 20, SESS_DURABILITY_PROCESS);
	add_pair(&s, "/dev/sdb", "/dev/sdc");
	add_pair(&s, "/var/lib/db/data", "/new/db/data");
	pair_block(&s.pairs[0], UINT64_C(1) << 34);
	pair_file(&s.pairs[1], 0);
	emit_sess("block-and-file", &s, 0, 0);
	sess_release(&s);

	sess_fill(&s, SESS_SWITCHED, 12, 0);
	for (int i = 0; i < SESS_MAX_PAIRS; i++) {
		char a[32], b[32];

		snprintf(a, sizeof(a), "/s/%d", i);
		snprintf(b, sizeof(b), "/t/%d", i);
		add_pair(&s, a, b);
		pair_file(&s.pairs[i], (uint64_t)i * 4096 + 1);
	}
	emit_sess("max-pairs", &s, 0, 0);
	sess_release(&s);

	memset(longpath, 'x', SESS_PATH_MAX);
	longpath[0] = '/';
	sess_fill(&s, SESS_ABORTED, 30, 0);
	add_pair(&s, longpath, "/t");
	pair_file(&s.pairs[0], UINT64_MAX);
	emit_sess("longest-path", &s, 0, 0);
	sess_release(&s);

	sess_fill(&s, SESS_COMMITTED, 16, 0);
	add_pair(&s, "/a", "/b");
	pair_file(&s.pairs[0], 1);
	{ /* an intact record of another version */
		uint8_t *enc;
		size_t len;
		struct seed out = { .n = 0 };

		if (sess_encode(&s, &enc, &len) < 0)
			exit(1);
		enc[4] = SESS_VERSION + 1; /* the encoder always writes its own version */
		put_u8(&out, 2);           /* the harness recomputes the checksum */
		put(&out, enc, len);
		emit("sess", "other-version", &out);
		free(enc);
	}
	sess_release(&s);

	/* structured mode: a session described field by field (sess.c) */
	d.n = 0;
	put_u8(&d, 0x80);
	put_u8(&d, SESS_SETUP);
	put_u8(&d, 16);
	put_le(&d, 0, 4);
	put_num(&d, 77);
	put_num(&d, 1700000000);
	put_u8(&d, 2);
	for (int i = 0; i < 2; i++) {
		const char *src = i ? "/src/two" : "/src/one", *tgt = i ? "/tgt/two" : "/tgt/one";

		put_le(&d, strlen(src), 2);
		put_str(&d, src);
		put_le(&d, strlen(tgt), 2);
		put_str(&d, tgt);
		put_num(&d, 1048576);
		put_num(&d, 1048576);
		put_num(&d, 0);
		put_u8(&d, SESS_KIND_FILE);
		put_num(&d, 2049);
		put_num(&d, 1000 + (uint64_t)i);
		put_num(&d, 0);
		put_u8(&d, SESS_KIND_BLOCK);
		put_num(&d, 0);
		put_num(&d, 0);
		put_num(&d, 0x800 + (uint64_t)i);
	}
	emit("sess", "structured-two-pairs", &d);
	d.b[1] = SESS_NSTATES + 1; /* an unknown state */
	emit("sess", "structured-bad-state", &d);
	d.b[1] = SESS_SETUP;
	d.b[2] = 31; /* a region size past 1 GiB */
	emit("sess", "structured-bad-shift", &d);

	d.n = 0; /* a path longer than SESS_PATH_MAX (filled in past the input) */
	put_u8(&d, 0x80);
	put_u8(&d, SESS_SETUP);
	put_u8(&d, 16);
	put_le(&d, 0, 4);
	put_num(&d, 1);
	put_num(&d, 2);
	put_u8(&d, 1);
	put_le(&d, SESS_PATH_MAX + 1, 2);
	emit("sess", "structured-path-too-long", &d);
}

/* ---- region ---- */

enum { R_SET, R_CLEAR, R_TEST, R_SETR, R_CLEARR, R_NEXTS, R_NEXTC, R_REINIT, R_SPAN, R_COUNT,
       R_SIZEV, R_SIZEP2, R_COMPARE };

static void gen_region(void)
{
	struct seed s;

	s.n = 0; /* a few ranges across word boundaries */
	put_le(&s, 1000, 2);
	put_u8(&s, R_SETR); put_num(&s, 10); put_num(&s, 100);
	put_u8(&s, R_NEXTS); put_num(&s, 0);
	put_u8(&s, R_CLEAR); put_le(&s, 50, 2);
	put_u8(&s, R_NEXTC); put_num(&s, 10);
	put_u8(&s, R_TEST); put_le(&s, 50, 2);
	put_u8(&s, R_SET); put_le(&s, 999, 2);
	put_u8(&s, R_CLEARR); put_num(&s, 63); put_num(&s, 2);
	put_u8(&s, R_NEXTS); put_num(&s, 64);
	put_u8(&s, R_SET); put_le(&s, 0, 2);
	put_u8(&s, R_COMPARE);
	emit("region", "ranges", &s);

	s.n = 0; /* one word, filled and emptied with ranges reaching UINT64_MAX */
	put_le(&s, 64, 2);
	put_u8(&s, R_SETR); put_num(&s, 0); put_num(&s, UINT64_MAX);
	put_u8(&s, R_NEXTC); put_num(&s, 0);
	put_u8(&s, R_CLEARR); put_num(&s, 63); put_num(&s, UINT64_MAX - 5);
	put_u8(&s, R_NEXTC); put_num(&s, 0);
	put_u8(&s, R_NEXTS); put_num(&s, UINT64_MAX);
	put_u8(&s, R_SETR); put_num(&s, UINT64_MAX); put_num(&s, 1);
	put_u8(&s, R_COMPARE);
	emit("region", "one-word-edges", &s);

	s.n = 0; /* the empty map, then a reinit */
	put_le(&s, 0, 2);
	put_u8(&s, R_SETR); put_num(&s, 0); put_num(&s, 10);
	put_u8(&s, R_NEXTS); put_num(&s, 0);
	put_u8(&s, R_NEXTC); put_num(&s, 0);
	put_u8(&s, R_REINIT); put_le(&s, 65, 2);
	put_u8(&s, R_SET); put_le(&s, 64, 2);
	put_u8(&s, R_NEXTC); put_num(&s, 0);
	put_u8(&s, R_NEXTS); put_num(&s, 1);
	emit("region", "empty-then-65", &s);

	s.n = 0; /* the largest map, near its end */
	put_le(&s, 8191, 2);
	put_u8(&s, R_SETR); put_num(&s, 8100); put_num(&s, 200);
	put_u8(&s, R_NEXTS); put_num(&s, 8190);
	put_u8(&s, R_NEXTC); put_num(&s, 8100);
	put_u8(&s, R_CLEARR); put_num(&s, 0); put_num(&s, 8150);
	put_u8(&s, R_SETR); put_num(&s, 127); put_num(&s, 130);
	put_u8(&s, R_COMPARE);
	emit("region", "large-map-tail", &s);

	s.n = 0; /* region arithmetic at the edges */
	put_le(&s, 1, 2);
	put_u8(&s, R_SPAN); put_num(&s, 0); put_num(&s, 0); put_u8(&s, 12);
	put_u8(&s, R_SPAN); put_num(&s, 4095); put_num(&s, 2); put_u8(&s, 12);
	put_u8(&s, R_SPAN); put_num(&s, UINT64_MAX - 5); put_num(&s, 100); put_u8(&s, 12);
	put_u8(&s, R_SPAN); put_num(&s, 1); put_num(&s, UINT64_MAX); put_u8(&s, 0);
	put_u8(&s, R_SPAN); put_num(&s, 65536); put_num(&s, 65536); put_u8(&s, 16);
	put_u8(&s, R_COUNT); put_num(&s, UINT64_MAX); put_u8(&s, 12);
	put_u8(&s, R_COUNT); put_num(&s, 0); put_u8(&s, 0);
	put_u8(&s, R_COUNT); put_num(&s, 4097); put_u8(&s, 12);
	put_u8(&s, R_COUNT); put_num(&s, UINT64_MAX); put_u8(&s, 63);
	put_u8(&s, R_SIZEV); put_num(&s, 4096);
	put_u8(&s, R_SIZEV); put_num(&s, 65535);
	put_u8(&s, R_SIZEP2); put_u8(&s, 30); put_u8(&s, 1);
	put_u8(&s, R_SIZEP2); put_u8(&s, 30); put_u8(&s, 2);
	put_u8(&s, R_SIZEP2); put_u8(&s, 12); put_u8(&s, 0);
	put_u8(&s, R_SIZEP2); put_u8(&s, 63); put_u8(&s, 1);
	emit("region", "arithmetic-edges", &s);
}

/* ---- size ---- */

static void gen_size(void)
{
	static const char *const texts[] = {
		"0", "4096", "64k", "64K", "1M", "1MiB", "1MB", "2G", "3T", "1P", "16PiB",
		"18446744073709551615", "18446744073709551616", "99999999999999999999x",
		"16383P", "16384P", "17592186044415M", "", "k", "1kb", "1Mi", "1 M", " 1",
		"-1", "+1", "1.5M", "0.25", "5s", "100ms", "1.5ms", "0.0000019s", "5.", ".5",
		"1e3", "1min", "18446744073709.551615", "18446744073709.551616",
		"18446744073709551ms", "1073741824", "1073741825",
	};
	struct seed s;

	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		char name[64];

		s.n = 0;
		put_str(&s, texts[i]);
		snprintf(name, sizeof(name), "text-%02zu", i);
		emit("size", name, &s);
	}
	s.n = 0; /* size_format: just under 1 MiB, into a short buffer */
	put_le(&s, 1048575, 8);
	put_str(&s, "xx");
	emit("size", "format-1048575", &s);
	s.n = 0;
	put_le(&s, UINT64_MAX, 8);
	emit("size", "format-max", &s);
}

/* ---- ctl ---- */

struct ctl_pair_seed {
	const char *src, *tgt;
	uint64_t size;
};

static void ctl_create_seed(struct seed *s, unsigned npairs, unsigned shift,
			    const struct ctl_pair_seed *pairs)
{
	put_u8(s, 0);
	put_u8(s, npairs - 1);
	put_u8(s, shift - 12);
	put_num(s, UINT64_C(0xc0ffee));
	put_le(s, 1, 4);
	for (unsigned i = 0; i < npairs; i++) {
		put_u8(s, (unsigned)strlen(pairs[i].src));
		put_u8(s, (unsigned)strlen(pairs[i].tgt));
		put_num(s, pairs[i].size);
		put_u8(s, 1);
		put_num(s, 2049);
		put_u8(s, 2);
		put_num(s, 0x701);
		put_str(s, pairs[i].src);
		put_str(s, pairs[i].tgt);
	}
}

static void ctl_raw_seed(struct seed *s, unsigned fix, const struct ctl_hdr *h, size_t upto)
{
	put_u8(s, 1);
	put_u8(s, fix);
	put_le(s, 0, 3);
	put(s, h, upto);
}

static void gen_ctl(void)
{
	static struct ctl_pair_seed many[CTL_MAX_PAIRS];
	static struct ctl_hdr h;
	const struct ctl_pair_seed one[] = { { "/dev/sdb", "/dev/sdc", 1 << 20 } };
	const struct ctl_pair_seed three[] = { { "/srv/a.img", "/new/a.img", 5 * 1048576 + 12345 },
					       { "/srv/b.img", "/new/b.img", 0 },
					       { "/dev/vdb", "/dev/vdc", 65536 } };
	struct seed s;

	s.n = 0;
	ctl_create_seed(&s, 1, 16, one);
	emit("ctl", "create-one-pair", &s);

	s.n = 0; /* edits to the mutable part (ready, state, epoch, a process) */
	ctl_create_seed(&s, 3, 12, three);
	put_le(&s, offsetof(struct ctl_hdr, ready), 2); put_u8(&s, 1);
	put_le(&s, offsetof(struct ctl_hdr, epoch), 2); put_u8(&s, 7);
	put_le(&s, offsetof(struct ctl_hdr, procs) + 2, 2); put_u8(&s, 0x55);
	emit("ctl", "create-three-pairs-mutable-edits", &s);

	s.n = 0; /* one edit in the immutable part: a pair's size */
	ctl_create_seed(&s, 3, 12, three);
	put_le(&s, offsetof(struct ctl_hdr, pairs) + sizeof(struct ctl_pair), 2); put_u8(&s, 0x80);
	emit("ctl", "create-immutable-edit", &s);

	s.n = 0; /* one edit to the checksum itself */
	ctl_create_seed(&s, 1, 30, one);
	put_le(&s, offsetof(struct ctl_hdr, checksum) + 7, 2); put_u8(&s, 1);
	emit("ctl", "create-checksum-edit", &s);

	for (int i = 0; i < CTL_MAX_PAIRS; i++)
		many[i] = (struct ctl_pair_seed){ "/s", "/t", (uint64_t)i * 4097 };
	s.n = 0;
	ctl_create_seed(&s, CTL_MAX_PAIRS, 12, many);
	emit("ctl", "create-max-pairs", &s);

	/* raw: a well-formed header, every repair on */
	memset(&h, 0, sizeof(h));
	h.npairs = 2;
	h.region_shift = 16;
	h.strtab_len = 40;
	h.session_id = 99;
	h.pairs[0].size = 1 << 20;
	h.pairs[0].source_off = 0; h.pairs[0].source_len = 9;
	h.pairs[0].target_off = 10; h.pairs[0].target_len = 9;
	h.pairs[1].size = 12345;
	h.pairs[1].source_off = 20; h.pairs[1].source_len = 9;
	h.pairs[1].target_off = 30; h.pairs[1].target_len = 9;
	s.n = 0;
	ctl_raw_seed(&s, 0x3f, &h, offsetof(struct ctl_hdr, pairs[2]));
	emit("ctl", "raw-repaired-valid", &s);

	s.n = 0; /* the same without the checksum repair */
	ctl_raw_seed(&s, 0x1f, &h, offsetof(struct ctl_hdr, pairs[2]));
	emit("ctl", "raw-no-checksum", &s);

	h.pairs[1].target_len = 11; /* a path past the string table */
	s.n = 0;
	ctl_raw_seed(&s, 0x3f, &h, offsetof(struct ctl_hdr, pairs[2]));
	emit("ctl", "raw-path-past-strtab", &s);
	h.pairs[1].target_len = 9;

	h.region_shift = 31;
	s.n = 0;
	ctl_raw_seed(&s, 0x3f, &h, offsetof(struct ctl_hdr, pairs[2]));
	emit("ctl", "raw-bad-shift", &s);

	s.n = 0; /* garbage, short */
	put_u8(&s, 1);
	put_le(&s, CTL_MAGIC, 8);
	put_str(&s, " not a control block");
	emit("ctl", "raw-garbage", &s);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: gen-seeds DIR\n");
		return 2;
	}
	outdir = argv[1];
	gen_dlog();
	gen_sess();
	gen_region();
	gen_size();
	gen_ctl();
	return failed;
}
