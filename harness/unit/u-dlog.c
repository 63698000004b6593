/*
 * u-dlog: the dirty-log segment format against lib/dlog.h: header
 * encode/decode, record encode, the dlog_scan decoder (longest valid prefix,
 * clean/torn/corrupt ends, hostile bytes), the writer (concurrent group
 * commit and per-record sync, preallocation, growth, the full-disk rule)
 * and dlog_seg_name.
 *
 * fdatasync and posix_fallocate are defined here, so the writer in
 * lib/dlog.c calls these: the real ones, unless a test scripts them (one
 * writeback error taken by one of two fdatasyncs running at once; a full
 * disk).
 *
 * Checksums are recomputed here from the format dlog.h documents (XXH3-64,
 * records seeded with the segment salt), so an encoder and a decoder that
 * drifted together from the format still fail.  Decoders are always given
 * an exact-size heap copy, so valgrind sees any read past the end.
 *
 * Segments live in a scratch directory under /var/tmp; the growth test uses
 * /dev/shm when it can (cheap fdatasync).  The full-disk test mounts a small
 * tmpfs inside the scratch directory (skipped, with the reason, when the
 * mount fails) and unmounts it.  The hostile-bytes test is seeded from
 * $VOLMIG_TEST_SEED (or the clock) and the seed is printed.
 */
#include "dlog.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "tap.h"

#define HDR_BODY 56 /* header bytes covered by the checksum (through lost_pairs) */
#define HDR_MIN (HDR_BODY + 8)
#define SLOTS_PER_PREALLOC (DLOG_PREALLOC / DLOG_REC_SIZE)

static char scratch[] = "/var/tmp/u-dlog.XXXXXX";
static char shm_scratch[] = "/dev/shm/u-dlog.XXXXXX";
static bool have_shm;
static uint64_t seed;

static uint64_t splitmix(uint64_t *state)
{
	uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static void le64_put(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != 0)
			return false;
	return true;
}

static void reseal_hdr(uint8_t *b)
{
	le64_put(b + HDR_BODY, XXH3_64bits(b, HDR_BODY));
}

/* An exact-size heap copy (at least one byte so malloc(0) is no special case). */
static uint8_t *dup_exact(const uint8_t *src, size_t len)
{
	uint8_t *b = malloc(len ? len : 1);

	if (b != NULL && len > 0)
		memcpy(b, src, len);
	return b;
}

static int hdr_decode_exact(const uint8_t *src, size_t len, struct dlog_hdr *h)
{
	uint8_t *b = dup_exact(src, len);
	int rc;

	if (b == NULL)
		return -ENOMEM;
	rc = dlog_hdr_decode(b, len, h);
	free(b);
	return rc;
}

/* ---- record collection through the dlog_scan callback ---- */

#define MAX_COLLECT 64

struct collect {
	const uint8_t *buf; /* the bytes being scanned */
	uint64_t salt, first_seq;
	size_t n;
	size_t bad;         /* callbacks whose record the bytes do not back */
	struct dlog_rec recs[MAX_COLLECT];
};

/* Every record handed to the callback must be the one at slot n, with a
 * matching checksum, the expected seq, count >= 1 and no wrap. */
static void on_rec(const struct dlog_rec *r, void *arg)
{
	struct collect *c = arg;
	const uint8_t *p = c->buf + c->n * DLOG_REC_SIZE;

	if (le64(p + 24) != XXH3_64bits_withSeed(p, 24, c->salt) || r->seq != c->first_seq + c->n ||
	    le64(p) != r->seq || le32(p + 8) != r->pair || le32(p + 12) != r->count ||
	    le64(p + 16) != r->first || r->count == 0 || r->first + r->count < r->first)
		c->bad++;
	if (c->n < MAX_COLLECT)
		c->recs[c->n] = *r;
	c->n++;
}

/* dlog_scan of an exact-size copy of src[0..len), collecting into *c. */
static size_t scan_exact(const uint8_t *src, size_t len, uint64_t salt, uint64_t first_seq,
			 struct dlog_scan *res, struct collect *c)
{
	uint8_t *b = dup_exact(src, len);
	size_t n;

	if (b == NULL) {
		memset(res, 0, sizeof(*res));
		return SIZE_MAX;
	}
	memset(c, 0, sizeof(*c));
	c->buf = b;
	c->salt = salt;
	c->first_seq = first_seq;
	memset(res, 0xa5, sizeof(*res)); /* dlog_scan must fill every field */
	n = dlog_scan(b, len, salt, first_seq, on_rec, c, res);
	free(b);
	c->buf = NULL;
	return n;
}

/* The fields of the i-th record of the fixed test segments. */
static struct dlog_rec rec_fields(uint64_t seq, size_t i)
{
	return (struct dlog_rec){ .seq = seq, .pair = (uint32_t)(i % 5), .count = (uint32_t)i + 1,
				  .first = (uint64_t)i * 1000 + 7 };
}

/* n records with seqs first_seq.. into buf (which the caller zeroed). */
static void fill_recs(uint8_t *buf, size_t n, uint64_t salt, uint64_t first_seq)
{
	for (size_t i = 0; i < n; i++) {
		struct dlog_rec r = rec_fields(first_seq + i, i);

		dlog_rec_encode(&r, salt, buf + i * DLOG_REC_SIZE);
	}
}

static bool collected_match(const struct collect *c, size_t n, uint64_t first_seq)
{
	if (c->n != n || c->bad != 0)
		return false;
	for (size_t i = 0; i < n && i < MAX_COLLECT; i++) {
		struct dlog_rec want = rec_fields(first_seq + i, i);

		if (memcmp(&c->recs[i], &want, sizeof(want)) != 0)
			return false;
	}
	return true;
}

static const char *end_name(enum dlog_end e)
{
	switch (e) {
	case DLOG_END_CLEAN:
		return "CLEAN";
	case DLOG_END_TORN:
		return "TORN";
	case DLOG_END_CORRUPT:
		return "CORRUPT";
	}
	return "?";
}

/* ---- header ---- */

static void test_hdr(void)
{
	struct dlog_hdr h = { .session_id = UINT64_C(0x0123456789abcdef),
			      .salt = UINT64_C(0xfedcba9876543210),
			      .pid = 4242,
			      .lost_events = 0x5,
			      .start = UINT64_C(0x1122334455667788),
			      .lost_pairs = UINT64_C(0x8000000000000001) };
	uint8_t b[DLOG_HDR_SIZE], m[DLOG_HDR_SIZE];
	struct dlog_hdr d;
	size_t nbad = 0;
	long first_bad = -1;
	int rc;

	memset(b, 0xa5, sizeof(b));
	dlog_hdr_encode(&h, b);
	ok(memcmp(b, "VMGDLOG1", 8) == 0 && le32(b + 8) == DLOG_VERSION &&
		   le32(b + 12) == DLOG_HDR_SIZE,
	   "header encode: magic \"VMGDLOG1\", version and hdr_size little-endian at 0, 8, 12");
	ok(le64(b + 16) == h.session_id && le64(b + 24) == h.salt && le32(b + 32) == 4242 &&
		   le32(b + 36) == h.lost_events && le64(b + 40) == h.start && le64(b + 48) == h.lost_pairs,
	   "header encode: fields little-endian in struct order from offset 16");
	ok(le64(b + HDR_BODY) == XXH3_64bits(b, HDR_BODY),
	   "header checksum is XXH3-64 of the 56 bytes before it");
	ok(all_zero(b + HDR_MIN, DLOG_HDR_SIZE - HDR_MIN), "header encode zero-pads to DLOG_HDR_SIZE");

	memset(&d, 0, sizeof(d));
	rc = hdr_decode_exact(b, sizeof(b), &d);
	ok(rc == 0 && d.magic == DLOG_MAGIC && d.version == DLOG_VERSION &&
		   d.hdr_size == DLOG_HDR_SIZE && d.session_id == h.session_id && d.salt == h.salt &&
		   d.pid == h.pid && d.lost_events == h.lost_events && d.start == h.start &&
		   d.lost_pairs == h.lost_pairs && d.checksum == le64(b + HDR_BODY),
	   "header round trip: every field (rc %d)", rc);

	h = (struct dlog_hdr){ .session_id = UINT64_MAX, .salt = 0, .pid = INT32_MAX,
			       .lost_events = UINT32_MAX, .start = UINT64_MAX, .lost_pairs = UINT64_MAX };
	dlog_hdr_encode(&h, b);
	memset(&d, 0, sizeof(d));
	rc = hdr_decode_exact(b, sizeof(b), &d);
	ok(rc == 0 && d.session_id == UINT64_MAX && d.salt == 0 && d.pid == INT32_MAX &&
		   d.lost_events == UINT32_MAX && d.start == UINT64_MAX && d.lost_pairs == UINT64_MAX,
	   "header round trip: extreme values (rc %d)", rc);

	/* short buffers: exact-size copies, so an over-read shows under valgrind */
	for (size_t len = 0; len < HDR_MIN; len++) {
		if (hdr_decode_exact(b, len, &d) != -EBADMSG) {
			nbad++;
			if (first_bad < 0)
				first_bad = (long)len;
		}
	}
	ok(nbad == 0, "decode of a buffer shorter than %d bytes: -EBADMSG for every length (%zu wrong, first len %ld)",
	   HDR_MIN, nbad, first_bad);
	/* the same lengths over the whole valid header: len alone must refuse them */
	nbad = 0;
	first_bad = -1;
	for (size_t len = 0; len < HDR_MIN; len++) {
		if (dlog_hdr_decode(b, len, &d) != -EBADMSG) {
			nbad++;
			if (first_bad < 0)
				first_bad = (long)len;
		}
	}
	ok(nbad == 0, "decode of a valid header with len < %d: -EBADMSG for every length (%zu wrong, first len %ld)",
	   HDR_MIN, nbad, first_bad);

	/* a resealed field change still decodes: the rejections below are the field's */
	memcpy(m, b, sizeof(m));
	le64_put(m + 16, 77);
	reseal_hdr(m);
	rc = hdr_decode_exact(m, sizeof(m), &d);
	ok(rc == 0 && d.session_id == 77, "a resealed header with another session_id decodes (rc %d)", rc);

	memcpy(m, b, sizeof(m));
	m[0] ^= 0x20; /* "vMGDLOG1" */
	reseal_hdr(m);
	rc = hdr_decode_exact(m, sizeof(m), &d);
	ok(rc == -EBADMSG, "decode refuses a wrong magic (checksum resealed) (rc %d)", rc);

	{
		static const uint32_t versions[] = { 0, DLOG_VERSION + 1, UINT32_MAX };
		static const uint32_t sizes[] = { 0, DLOG_HDR_SIZE - 1, DLOG_HDR_SIZE * 2, 512 };

		for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
			memcpy(m, b, sizeof(m));
			m[8] = (uint8_t)versions[i];
			m[9] = (uint8_t)(versions[i] >> 8);
			m[10] = (uint8_t)(versions[i] >> 16);
			m[11] = (uint8_t)(versions[i] >> 24);
			reseal_hdr(m);
			rc = hdr_decode_exact(m, sizeof(m), &d);
			ok(rc == -EBADMSG, "decode refuses version %" PRIu32 " (checksum resealed) (rc %d)",
			   versions[i], rc);
		}
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			memcpy(m, b, sizeof(m));
			m[12] = (uint8_t)sizes[i];
			m[13] = (uint8_t)(sizes[i] >> 8);
			m[14] = (uint8_t)(sizes[i] >> 16);
			m[15] = (uint8_t)(sizes[i] >> 24);
			reseal_hdr(m);
			rc = hdr_decode_exact(m, sizeof(m), &d);
			ok(rc == -EBADMSG, "decode refuses hdr_size %" PRIu32 " (checksum resealed) (rc %d)",
			   sizes[i], rc);
		}
	}

	/* every single bit of the checksummed bytes and of the checksum itself */
	nbad = 0;
	first_bad = -1;
	for (size_t bit = 0; bit < HDR_MIN * 8; bit++) {
		memcpy(m, b, sizeof(m));
		m[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		if (dlog_hdr_decode(m, sizeof(m), &d) != -EBADMSG) {
			nbad++;
			if (first_bad < 0)
				first_bad = (long)bit;
		}
	}
	ok(nbad == 0, "every one of the %d single-bit flips in bytes 0..%d: -EBADMSG (%zu accepted, first bit %ld)",
	   HDR_MIN * 8, HDR_MIN - 1, nbad, first_bad);
}

/* ---- records ---- */

static void test_rec_encode(void)
{
	struct dlog_rec r = { .seq = UINT64_C(0x0102030405060708), .pair = 0x0a0b0c0d,
			      .count = 0x11223344, .first = UINT64_C(0x8877665544332211) };
	uint64_t salt = UINT64_C(0x5a17);
	uint8_t b[DLOG_REC_SIZE], b2[DLOG_REC_SIZE];

	dlog_rec_encode(&r, salt, b);
	ok(le64(b) == r.seq && le32(b + 8) == r.pair && le32(b + 12) == r.count &&
		   le64(b + 16) == r.first,
	   "record encode: seq, pair, count, first little-endian at 0, 8, 12, 16");
	ok(le64(b + 24) == XXH3_64bits_withSeed(b, 24, salt),
	   "record checksum is XXH3-64 of the 24 bytes before it, seeded with the salt");
	dlog_rec_encode(&r, salt + 1, b2);
	ok(memcmp(b, b2, 24) == 0 && le64(b2 + 24) != le64(b + 24),
	   "another salt gives the same body and another checksum");
}

static void test_scan_basic(void)
{
	enum { N = 10, SLOTS = 16 };
	uint8_t buf[SLOTS * DLOG_REC_SIZE];
	uint64_t salt = UINT64_C(0x243f6a8885a308d3);
	struct dlog_scan res, res2;
	struct collect c;
	size_t n;

	memset(buf, 0, sizeof(buf));
	fill_recs(buf, N, salt, 1);

	n = scan_exact(buf, sizeof(buf), salt, 1, &res, &c);
	ok(n == N && res.valid == N * DLOG_REC_SIZE && res.next_seq == N + 1 &&
		   res.end == DLOG_END_CLEAN && res.bad_off == 0,
	   "%d records then zero slots: %zu records, valid %zu, next_seq %" PRIu64 ", %s",
	   N, n, res.valid, res.next_seq, end_name(res.end));
	ok(collected_match(&c, N, 1), "callback saw the %d records in order with their fields (%zu calls, %zu bad)",
	   N, c.n, c.bad);

	n = scan_exact(buf, N * DLOG_REC_SIZE, salt, 1, &res, &c);
	ok(n == N && res.valid == N * DLOG_REC_SIZE && res.end == DLOG_END_CLEAN &&
		   collected_match(&c, N, 1),
	   "records up to the end of the bytes: %zu records, %s", n, end_name(res.end));

	memset(&res2, 0xa5, sizeof(res2));
	n = dlog_scan(buf, sizeof(buf), salt, 1, NULL, NULL, &res2);
	ok(n == N && res2.valid == res.valid && res2.next_seq == res.next_seq && res2.end == res.end,
	   "a NULL callback gives the same result (%zu records)", n);

	n = scan_exact(buf, 0, salt, 9, &res, &c);
	ok(n == 0 && res.valid == 0 && res.next_seq == 9 && res.end == DLOG_END_CLEAN && c.n == 0,
	   "empty buffer: 0 records, next_seq is first_seq, CLEAN");

	n = scan_exact(buf + N * DLOG_REC_SIZE, sizeof(buf) - N * DLOG_REC_SIZE, salt, 1, &res, &c);
	ok(n == 0 && res.valid == 0 && res.end == DLOG_END_CLEAN && c.n == 0,
	   "all-zero buffer: 0 records, CLEAN");

	/* a zero slot ends the prefix even with valid records after it */
	{
		uint8_t z[8 * DLOG_REC_SIZE];

		memset(z, 0, sizeof(z));
		fill_recs(z, 6, salt, 1);
		memset(z + 3 * DLOG_REC_SIZE, 0, DLOG_REC_SIZE);
		n = scan_exact(z, sizeof(z), salt, 1, &res, &c);
		ok(n == 3 && res.valid == 3 * DLOG_REC_SIZE && res.next_seq == 4 &&
			   res.end == DLOG_END_CLEAN && collected_match(&c, 3, 1),
		   "a zero slot ends the prefix CLEAN even with records after it (%zu, %s)", n,
		   end_name(res.end));
	}
}

static void test_scan_torn_corrupt(void)
{
	enum { N = 10, SLOTS = 16 };
	uint8_t buf[SLOTS * DLOG_REC_SIZE], m[SLOTS * DLOG_REC_SIZE];
	uint64_t salt = 99;
	struct dlog_scan res;
	struct collect c;
	size_t n, last = (N - 1) * DLOG_REC_SIZE, mid = 3 * DLOG_REC_SIZE;
	size_t nbad = 0;
	long first_bad = -1;

	memset(buf, 0, sizeof(buf));
	fill_recs(buf, N, salt, 1);

	/* any byte of the last record damaged, zeros after it: TORN there */
	for (size_t i = 0; i < DLOG_REC_SIZE; i++) {
		memcpy(m, buf, sizeof(m));
		m[last + i] ^= (uint8_t)(1u << (i % 8));
		n = scan_exact(m, sizeof(m), salt, 1, &res, &c);
		if (!(n == N - 1 && res.valid == last && res.next_seq == N && res.end == DLOG_END_TORN &&
		      res.bad_off == last && collected_match(&c, N - 1, 1))) {
			nbad++;
			if (first_bad < 0)
				first_bad = (long)i;
		}
	}
	ok(nbad == 0, "a bit flipped in any byte of the last record: TORN, bad_off %zu, %d records (%zu wrong, first byte %ld)",
	   last, N - 1, nbad, first_bad);

	/* a half-written last record (a torn append) */
	memcpy(m, buf, sizeof(m));
	memset(m + last + 16, 0, 16);
	n = scan_exact(m, sizeof(m), salt, 1, &res, &c);
	ok(n == N - 1 && res.end == DLOG_END_TORN && res.bad_off == last && res.valid == last,
	   "last record half written: TORN at %zu (%zu records, %s, bad_off %zu)", last, n,
	   end_name(res.end), res.bad_off);

	/* the same torn last record with no byte after it */
	n = scan_exact(m, N * DLOG_REC_SIZE, salt, 1, &res, &c);
	ok(n == N - 1 && res.end == DLOG_END_TORN && res.bad_off == last,
	   "bad record in the last slot of the bytes: TORN (%s)", end_name(res.end));

	/* any byte of a middle record damaged, valid records after it: CORRUPT */
	nbad = 0;
	first_bad = -1;
	for (size_t i = 0; i < DLOG_REC_SIZE; i++) {
		memcpy(m, buf, sizeof(m));
		m[mid + i] ^= (uint8_t)(0x80u >> (i % 8));
		n = scan_exact(m, sizeof(m), salt, 1, &res, &c);
		if (!(n == 3 && res.valid == mid && res.next_seq == 4 && res.end == DLOG_END_CORRUPT &&
		      res.bad_off == mid && collected_match(&c, 3, 1))) {
			nbad++;
			if (first_bad < 0)
				first_bad = (long)i;
		}
	}
	ok(nbad == 0, "a bit flipped in any byte of record 4 of %d: CORRUPT, valid stops at %zu, callback saw 3 (%zu wrong, first byte %ld)",
	   N, mid, nbad, first_bad);

	/* a bad record, zeros, then one stray non-zero byte far later: CORRUPT */
	memcpy(m, buf, sizeof(m));
	memset(m + mid, 0, sizeof(m) - mid);
	m[mid] = 1;
	m[sizeof(m) - 1] = 0x40;
	n = scan_exact(m, sizeof(m), salt, 1, &res, &c);
	ok(n == 3 && res.end == DLOG_END_CORRUPT && res.bad_off == mid,
	   "bad record with one non-zero byte anywhere after it: CORRUPT (%s)", end_name(res.end));
	m[sizeof(m) - 1] = 0;
	n = scan_exact(m, sizeof(m), salt, 1, &res, &c);
	ok(n == 3 && res.end == DLOG_END_TORN && res.bad_off == mid,
	   "the same without that byte: TORN (%s)", end_name(res.end));

	/* a bad record followed by a partial slot: its bytes decide torn or corrupt */
	memcpy(m, buf, sizeof(m));
	m[last] ^= 1;
	memset(m + N * DLOG_REC_SIZE, 0, 20);
	n = scan_exact(m, N * DLOG_REC_SIZE + 20, salt, 1, &res, &c);
	ok(n == N - 1 && res.end == DLOG_END_TORN && res.bad_off == last,
	   "bad last record then 20 zero bytes: TORN (%s)", end_name(res.end));
	m[N * DLOG_REC_SIZE + 19] = 0xff;
	n = scan_exact(m, N * DLOG_REC_SIZE + 20, salt, 1, &res, &c);
	ok(n == N - 1 && res.end == DLOG_END_CORRUPT && res.bad_off == last,
	   "bad last record then 20 bytes, one non-zero: CORRUPT (%s)", end_name(res.end));
}

static void test_scan_rejects(void)
{
	enum { SLOTS = 8 };
	uint8_t buf[SLOTS * DLOG_REC_SIZE], m[SLOTS * DLOG_REC_SIZE];
	uint64_t salt = UINT64_C(0xabcdef);
	struct dlog_scan res;
	struct collect c;
	struct dlog_rec r;
	size_t n;

	memset(buf, 0, sizeof(buf));
	fill_recs(buf, 6, salt, 1);

	/* record 2 copied into slot 3: its checksum is right, its seq is not */
	memcpy(m, buf, sizeof(m));
	memcpy(m + 2 * DLOG_REC_SIZE, m + 1 * DLOG_REC_SIZE, DLOG_REC_SIZE);
	n = scan_exact(m, sizeof(m), salt, 1, &res, &c);
	ok(n == 2 && res.end == DLOG_END_CORRUPT && res.bad_off == 2 * DLOG_REC_SIZE && c.bad == 0,
	   "a record copied into the next slot is rejected (seq): %zu records, %s at %zu", n,
	   end_name(res.end), res.bad_off);

	/* a well-formed record for seq 5 written in slot 3 */
	memcpy(m, buf, sizeof(m));
	r = rec_fields(5, 2);
	dlog_rec_encode(&r, salt, m + 2 * DLOG_REC_SIZE);
	n = scan_exact(m, 3 * DLOG_REC_SIZE, salt, 1, &res, &c);
	ok(n == 2 && res.end == DLOG_END_TORN && res.bad_off == 2 * DLOG_REC_SIZE,
	   "a record carrying seq 5 in slot 3 is rejected: %zu records, %s", n, end_name(res.end));

	/* the segment shifted one slot: each record sits one slot early */
	n = scan_exact(buf + DLOG_REC_SIZE, sizeof(buf) - DLOG_REC_SIZE, salt, 1, &res, &c);
	ok(n == 0 && res.valid == 0 && res.end == DLOG_END_CORRUPT && res.bad_off == 0,
	   "records shifted one slot early are rejected from the first (%zu, %s)", n, end_name(res.end));
	n = scan_exact(buf + DLOG_REC_SIZE, sizeof(buf) - DLOG_REC_SIZE, salt, 2, &res, &c);
	ok(n == 5 && res.next_seq == 7 && res.end == DLOG_END_CLEAN && c.bad == 0,
	   "the same bytes scanned with first_seq 2 are accepted (%zu)", n);

	/* the segment shifted one slot late: a zero slot, then each record one slot late */
	memset(m, 0, sizeof(m));
	memcpy(m + DLOG_REC_SIZE, buf, 6 * DLOG_REC_SIZE);
	n = scan_exact(m, sizeof(m), salt, 1, &res, &c);
	ok(n == 0 && res.valid == 0 && res.end == DLOG_END_CLEAN,
	   "records shifted one slot late: the zero first slot ends the prefix (%zu, %s)", n,
	   end_name(res.end));
	n = scan_exact(m + DLOG_REC_SIZE, 7 * DLOG_REC_SIZE, salt, 2, &res, &c);
	ok(n == 0 && res.end == DLOG_END_CORRUPT && res.bad_off == 0,
	   "records one slot late, scanned from slot 2 with first_seq 2, are rejected (%zu, %s)", n,
	   end_name(res.end));

	/* another segment's salt */
	n = scan_exact(buf, sizeof(buf), salt + 1, 1, &res, &c);
	ok(n == 0 && res.valid == 0 && res.end == DLOG_END_CORRUPT && res.bad_off == 0 && c.n == 0,
	   "records checked with another salt: none accepted (%zu, %s)", n, end_name(res.end));
	n = scan_exact(buf, sizeof(buf), salt ^ (UINT64_C(1) << 63), 1, &res, &c);
	ok(n == 0 && res.end == DLOG_END_CORRUPT, "salt differing in bit 63 only: none accepted (%zu)", n);
	n = scan_exact(buf, DLOG_REC_SIZE, salt + 1, 1, &res, &c);
	ok(n == 0 && res.end == DLOG_END_TORN && res.bad_off == 0,
	   "a single record under another salt: TORN at 0 (%s)", end_name(res.end));

	/* count must be >= 1 (dlog.h); a checksummed count 0 is still bad */
	memcpy(m, buf, sizeof(m));
	r = (struct dlog_rec){ .seq = 4, .pair = 1, .count = 0, .first = 10 };
	dlog_rec_encode(&r, salt, m + 3 * DLOG_REC_SIZE);
	n = scan_exact(m, sizeof(m), salt, 1, &res, &c);
	ok(n == 3 && res.end == DLOG_END_CORRUPT && res.bad_off == 3 * DLOG_REC_SIZE && c.bad == 0,
	   "a record with count 0 (checksum right) is rejected: %zu records, %s at %zu", n,
	   end_name(res.end), res.bad_off);
	n = scan_exact(m, 4 * DLOG_REC_SIZE, salt, 1, &res, &c);
	ok(n == 3 && res.end == DLOG_END_TORN, "count 0 as the last record: TORN (%s)", end_name(res.end));

	/* the region range may not wrap past 2^64 */
	memcpy(m, buf, sizeof(m));
	r = (struct dlog_rec){ .seq = 1, .pair = 0, .count = 3, .first = UINT64_MAX - 2 };
	dlog_rec_encode(&r, salt, m);
	n = scan_exact(m, DLOG_REC_SIZE, salt, 1, &res, &c);
	ok(n == 0 && res.end == DLOG_END_TORN, "a record whose range wraps (first 2^64-3, count 3) is rejected (%zu)",
	   n);
	r.first = UINT64_MAX - 3;
	dlog_rec_encode(&r, salt, m);
	n = scan_exact(m, DLOG_REC_SIZE, salt, 1, &res, &c);
	ok(n == 1 && c.n == 1 && c.recs[0].first == UINT64_MAX - 3 && c.recs[0].count == 3,
	   "the range ending exactly at 2^64-1 is accepted (%zu)", n);
	r = (struct dlog_rec){ .seq = 1, .pair = UINT32_MAX, .count = UINT32_MAX, .first = 0 };
	dlog_rec_encode(&r, salt, m);
	n = scan_exact(m, DLOG_REC_SIZE, salt, 1, &res, &c);
	ok(n == 1 && c.n == 1 && c.recs[0].pair == UINT32_MAX && c.recs[0].count == UINT32_MAX,
	   "pair and count 2^32-1 are carried intact (%zu)", n);
}

static void test_scan_partial_first_seq(void)
{
	enum { SLOTS = 12 };
	uint8_t buf[SLOTS * DLOG_REC_SIZE];
	uint64_t salt = 7;
	struct dlog_scan res;
	struct collect c;
	size_t n;

	/* 5 records and the first 20 bytes of a 6th: the partial one is not in the prefix */
	memset(buf, 0, sizeof(buf));
	fill_recs(buf, 6, salt, 1);
	n = scan_exact(buf, 5 * DLOG_REC_SIZE + 20, salt, 1, &res, &c);
	ok(n == 5 && res.valid == 5 * DLOG_REC_SIZE && res.next_seq == 6 &&
		   res.end == DLOG_END_CLEAN && collected_match(&c, 5, 1),
	   "5 records + 20 bytes of a 6th: 5 records, valid %zu, next_seq %" PRIu64 ", %s",
	   res.valid, res.next_seq, end_name(res.end));
	n = scan_exact(buf, DLOG_REC_SIZE - 1, salt, 1, &res, &c);
	ok(n == 0 && res.valid == 0 && res.end == DLOG_END_CLEAN && c.n == 0,
	   "31 bytes of one record: 0 records, CLEAN");
	for (size_t tail = 1; tail < DLOG_REC_SIZE; tail += 10) {
		n = scan_exact(buf, 2 * DLOG_REC_SIZE + tail, salt, 1, &res, &c);
		ok(n == 2 && res.valid == 2 * DLOG_REC_SIZE && c.n == 2,
		   "2 records + %zu trailing bytes: valid %zu", tail, res.valid);
	}

	/* a segment read from the middle: the first record carries first_seq */
	memset(buf, 0, sizeof(buf));
	fill_recs(buf, 10, salt, 1000);
	n = scan_exact(buf, sizeof(buf), salt, 1000, &res, &c);
	ok(n == 10 && res.next_seq == 1010 && res.end == DLOG_END_CLEAN && collected_match(&c, 10, 1000),
	   "records 1000..1009 scanned with first_seq 1000: all 10, next_seq %" PRIu64, res.next_seq);
	n = scan_exact(buf, sizeof(buf), salt, 1, &res, &c);
	ok(n == 0 && res.end == DLOG_END_CORRUPT && res.next_seq == 1,
	   "the same with first_seq 1: none accepted (%zu, %s)", n, end_name(res.end));
	n = scan_exact(buf, sizeof(buf), salt, 1001, &res, &c);
	ok(n == 0 && res.end == DLOG_END_CORRUPT, "the same with first_seq 1001: none accepted (%zu)", n);
	n = scan_exact(buf, sizeof(buf), salt, 999, &res, &c);
	ok(n == 0 && res.end == DLOG_END_CORRUPT, "the same with first_seq 999: none accepted (%zu)", n);
}

/* ---- hostile bytes ---- */

/* The decoder as dlog.h describes it, written independently. */
static size_t ref_scan(const uint8_t *b, size_t len, uint64_t salt, uint64_t first_seq,
		       struct dlog_scan *res)
{
	size_t off = 0;
	uint64_t seq = first_seq;

	res->end = DLOG_END_CLEAN;
	res->bad_off = 0;
	for (; off + DLOG_REC_SIZE <= len; off += DLOG_REC_SIZE, seq++) {
		const uint8_t *p = b + off;
		uint64_t first = le64(p + 16);
		uint32_t count = le32(p + 12);

		if (all_zero(p, DLOG_REC_SIZE))
			break;
		if (le64(p + 24) != XXH3_64bits_withSeed(p, 24, salt) || le64(p) != seq || count == 0 ||
		    first > UINT64_MAX - count) {
			res->bad_off = off;
			res->end = all_zero(p + DLOG_REC_SIZE, len - off - DLOG_REC_SIZE) ? DLOG_END_TORN
											 : DLOG_END_CORRUPT;
			break;
		}
	}
	res->valid = off;
	res->next_seq = seq;
	return off / DLOG_REC_SIZE;
}

#define HOSTILE_SLOTS 48
#define HOSTILE_CAP (HOSTILE_SLOTS * DLOG_REC_SIZE + DLOG_REC_SIZE - 1)

static uint64_t rnd_below(uint64_t *rng, uint64_t n)
{
	return n ? splitmix(rng) % n : 0;
}

/* One hostile case into b; returns its length and sets the salts and first_seq. */
static size_t hostile_case(uint64_t *rng, uint8_t *b, uint64_t *salt, uint64_t *scan_salt,
			   uint64_t *first_seq)
{
	unsigned mode = (unsigned)rnd_below(rng, 4);
	size_t len;

	*salt = splitmix(rng);
	*first_seq = rnd_below(rng, 3) ? 1 + rnd_below(rng, 1000) : splitmix(rng);
	*scan_salt = *salt;
	memset(b, 0, HOSTILE_CAP);
	if (mode == 0) { /* noise */
		len = (size_t)rnd_below(rng, HOSTILE_CAP + 1);
		for (size_t i = 0; i < len; i++)
			b[i] = (uint8_t)splitmix(rng);
		return len;
	}
	if (mode == 3) { /* zeros with a few stray bytes */
		len = (size_t)rnd_below(rng, HOSTILE_CAP + 1);
		for (int k = (int)rnd_below(rng, 4); k > 0 && len > 0; k--)
			b[rnd_below(rng, len)] = (uint8_t)(1 + rnd_below(rng, 255));
		return len;
	}
	/* mode 1 (and 2 under another salt): well-formed records, then damage */
	{
		size_t k = (size_t)rnd_below(rng, HOSTILE_SLOTS - 4);
		size_t zslots = (size_t)rnd_below(rng, 4), partial = 0;

		for (size_t i = 0; i < k; i++) {
			struct dlog_rec r = { .seq = *first_seq + i, .pair = (uint32_t)rnd_below(rng, 70) };
			uint64_t x = rnd_below(rng, 16);

			r.count = x == 0 ? 0 : x < 12 ? (uint32_t)(1 + rnd_below(rng, 100)) : (uint32_t)splitmix(rng);
			x = rnd_below(rng, 16);
			r.first = x == 0 ? UINT64_MAX - rnd_below(rng, 200) : x == 1 ? splitmix(rng) : rnd_below(rng, 1u << 20);
			if (rnd_below(rng, 64) == 0)
				r.seq += 1 + rnd_below(rng, 3);
			dlog_rec_encode(&r, *salt, b + i * DLOG_REC_SIZE);
		}
		if (rnd_below(rng, 4) == 0) {
			partial = (size_t)(1 + rnd_below(rng, DLOG_REC_SIZE - 1));
			if (rnd_below(rng, 2))
				for (size_t i = 0; i < partial; i++)
					b[(k + zslots) * DLOG_REC_SIZE + i] = (uint8_t)splitmix(rng);
		}
		len = (k + zslots) * DLOG_REC_SIZE + partial;
		for (int m = (int)rnd_below(rng, 4); m > 0 && len > 0; m--) {
			size_t nslots = len / DLOG_REC_SIZE, pos = (size_t)rnd_below(rng, len);

			switch (rnd_below(rng, 6)) {
			case 0:
				b[pos] ^= (uint8_t)(1u << rnd_below(rng, 8));
				break;
			case 1:
				b[pos] = (uint8_t)splitmix(rng);
				break;
			case 2: /* a slot zeroed */
				if (nslots)
					memset(b + rnd_below(rng, nslots) * DLOG_REC_SIZE, 0, DLOG_REC_SIZE);
				break;
			case 3: /* a slot copied over another */
				if (nslots)
					memmove(b + rnd_below(rng, nslots) * DLOG_REC_SIZE,
						b + rnd_below(rng, nslots) * DLOG_REC_SIZE, DLOG_REC_SIZE);
				break;
			case 4: /* truncated anywhere */
				len = pos;
				break;
			default: /* a torn write: the end of a slot zeroed */
				if (nslots) {
					size_t s = (size_t)rnd_below(rng, nslots) * DLOG_REC_SIZE;
					size_t cut = (size_t)rnd_below(rng, DLOG_REC_SIZE);

					memset(b + s + cut, 0, DLOG_REC_SIZE - cut);
				}
				break;
			}
		}
		if (mode == 2)
			*scan_salt = *salt ^ (UINT64_C(1) << rnd_below(rng, 64));
		return len;
	}
}

static void test_scan_hostile(void)
{
	enum { ITERS = 20000 };
	uint64_t rng = seed ^ UINT64_C(0xd1f7);
	uint8_t *b = malloc(HOSTILE_CAP);
	size_t mismatch = 0, cb_bad = 0, shape_bad = 0, accepted = 0;
	size_t ends[3] = { 0, 0, 0 };
	long first_mismatch = -1;

	if (b == NULL) {
		ok(0, "malloc for the hostile-bytes test");
		return;
	}
	for (long it = 0; it < ITERS; it++) {
		uint64_t salt, scan_salt, first_seq;
		size_t len = hostile_case(&rng, b, &salt, &scan_salt, &first_seq);
		struct dlog_scan res, want;
		struct collect c;
		size_t n, wn;

		n = scan_exact(b, len, scan_salt, first_seq, &res, &c);
		wn = ref_scan(b, len, scan_salt, first_seq, &want);
		cb_bad += c.bad;
		if (n != c.n || res.valid != n * DLOG_REC_SIZE || res.valid > len ||
		    res.next_seq != first_seq + n ||
		    (res.end != DLOG_END_CLEAN && res.bad_off != res.valid) ||
		    (unsigned)res.end > DLOG_END_CORRUPT)
			shape_bad++;
		if (n != wn || res.valid != want.valid || res.next_seq != want.next_seq ||
		    res.end != want.end || res.bad_off != want.bad_off) {
			if (first_mismatch < 0) {
				first_mismatch = it;
				printf("# iteration %ld (len %zu, first_seq %" PRIu64 "): got %zu records, valid %zu, %s at %zu; want %zu, %zu, %s at %zu\n",
				       it, len, first_seq, n, res.valid, end_name(res.end), res.bad_off, wn,
				       want.valid, end_name(want.end), want.bad_off);
			}
			mismatch++;
		}
		accepted += n;
		if ((unsigned)res.end <= DLOG_END_CORRUPT)
			ends[res.end]++;
	}
	free(b);
	printf("# hostile: %d cases, %zu records accepted, ends CLEAN %zu TORN %zu CORRUPT %zu\n",
	       ITERS, accepted, ends[0], ends[1], ends[2]);
	ok(cb_bad == 0, "hostile bytes: no record with a wrong checksum, seq, count or range reached the callback (%zu did)",
	   cb_bad);
	ok(shape_bad == 0, "hostile bytes: return value, valid, next_seq and bad_off consistent (%zu cases not)",
	   shape_bad);
	ok(mismatch == 0, "hostile bytes: every result equals the format's longest valid prefix (%zu differ, first iteration %ld)",
	   mismatch, first_mismatch);
	ok(accepted > 0 && ends[0] > 0 && ends[1] > 0 && ends[2] > 0,
	   "hostile cases reached accepted records and every end kind");
}

/* ---- writer ---- */

/* Read a whole file into a fresh buffer. */
static uint8_t *slurp(const char *path, size_t *len)
{
	struct stat st;
	uint8_t *b = NULL;
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) < 0 || (b = malloc((size_t)st.st_size + 1)) == NULL)
		goto fail;
	while (got < (size_t)st.st_size) {
		ssize_t n = pread(fd, b + got, (size_t)st.st_size - got, (off_t)got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			goto fail;
		got += (size_t)n;
	}
	close(fd);
	*len = got;
	return b;

fail:
	free(b);
	close(fd);
	return NULL;
}

static int read_hdr(const char *path, struct dlog_hdr *h)
{
	size_t len;
	uint8_t *b = slurp(path, &len);
	int rc;

	if (b == NULL)
		return errno ? -errno : -EIO;
	rc = dlog_hdr_decode(b, len < DLOG_HDR_SIZE ? len : DLOG_HDR_SIZE, h);
	free(b);
	return rc;
}

#define APP_THREADS 8
#define APP_PER_THREAD 500

struct app_arg {
	struct dlog_writer *w;
	uint32_t t;
	int n;
	int fails;
	int first_rc;
	int early; /* group commit: returned before its record was durable */
};

static uint32_t app_count(uint32_t i)
{
	return 1 + i % 13;
}

static void *app_main(void *arg)
{
	struct app_arg *a = arg;

	for (uint32_t i = 0; i < (uint32_t)a->n; i++) {
		/* the record goes after every record written before the call */
		uint64_t end = atomic_load(&a->w->written) + DLOG_REC_SIZE;
		int rc = dlog_append(a->w, a->t, ((uint64_t)a->t << 32) | i, app_count(i));

		if (rc != 0 && a->fails++ == 0)
			a->first_rc = rc;
		if (rc == 0 && !a->w->sync_each && atomic_load(&a->w->durable) < end)
			a->early++;
	}
	return NULL;
}

struct seen {
	int nthreads, per_thread;
	uint8_t *hits;       /* [thread][i] */
	uint64_t *last_seq;  /* per thread */
	size_t n, bad, dup, order;
	uint64_t seq_expect;
};

static void on_app_rec(const struct dlog_rec *r, void *arg)
{
	struct seen *s = arg;
	uint64_t t = r->pair, i = r->first & 0xffffffffu;

	s->n++;
	if (r->seq != s->seq_expect++)
		s->bad++;
	if (t >= (uint64_t)s->nthreads || (r->first >> 32) != t || i >= (uint64_t)s->per_thread ||
	    r->count != app_count((uint32_t)i)) {
		s->bad++;
		return;
	}
	if (s->hits[t * (uint64_t)s->per_thread + i]++)
		s->dup++;
	if (r->seq <= s->last_seq[t])
		s->order++; /* one thread's appends are sequential: slots must follow */
	s->last_seq[t] = r->seq;
}

/* nthreads x per_thread concurrent appends into a new segment, then the file
 * read back and checked record by record. */
static void writer_run(const char *dir, bool sync_each, int nthreads, int per_thread)
{
	const char *mode = sync_each ? "sync_each" : "group commit";
	struct dlog_writer w;
	struct app_arg a[APP_THREADS];
	pthread_t th[APP_THREADS];
	struct seen s = { .nthreads = nthreads, .per_thread = per_thread, .seq_expect = 1 };
	struct dlog_hdr h;
	struct dlog_scan res;
	struct stat st;
	char path[PATH_MAX];
	uint8_t *b = NULL;
	size_t len = 0, total = (size_t)nthreads * (size_t)per_thread, n, missing = 0;
	int dfd, rc, started = 0, fails = 0, first_rc = 0, early = 0;
	uint64_t pid = (uint64_t)getpid();

	snprintf(path, sizeof(path), "%s/%d-%s.seg", dir, (int)getpid(), sync_each ? "s" : "g");
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	rc = dlog_writer_create(&w, dfd, path, UINT64_C(0x5e551011) + sync_each, (pid_t)pid,
				UINT64_C(123456789) + sync_each, sync_each);
	ok(rc == 0 && w.fd >= 0, "%s: dlog_writer_create in %s (rc %d)", mode, dir, rc);
	if (rc < 0)
		goto out;
	if (stat(path, &st) < 0)
		memset(&st, 0, sizeof(st));
	ok(st.st_size == (off_t)(DLOG_HDR_SIZE + DLOG_PREALLOC) &&
		   (uint64_t)st.st_blocks * 512 >= DLOG_HDR_SIZE + DLOG_PREALLOC,
	   "%s: a new segment is allocated to DLOG_HDR_SIZE + DLOG_PREALLOC (size %lld, %lld blocks)",
	   mode, (long long)st.st_size, (long long)st.st_blocks);

	for (int t = 0; t < nthreads; t++) {
		a[t] = (struct app_arg){ .w = &w, .t = (uint32_t)t, .n = per_thread };
		if (pthread_create(&th[t], NULL, app_main, &a[t]) != 0)
			break;
		started++;
	}
	for (int t = 0; t < started; t++) {
		pthread_join(th[t], NULL);
		if (a[t].fails && fails == 0)
			first_rc = a[t].first_rc;
		fails += a[t].fails;
		early += a[t].early;
	}
	ok(started == nthreads && fails == 0,
	   "%s: %d threads x %d appends all returned 0 (%d threads, %d failed, first rc %d)", mode,
	   nthreads, per_thread, started, fails, first_rc);
	if (!sync_each)
		ok(early == 0, "group commit: no append returned before a sync covered its record (%d did)",
		   early);
	if (!sync_each)
		ok(atomic_load(&w.durable) == DLOG_HDR_SIZE + total * DLOG_REC_SIZE &&
			   atomic_load(&w.written) == atomic_load(&w.durable),
		   "group commit: after every append returned, durable covers every record (%" PRIu64 ")",
		   (uint64_t)atomic_load(&w.durable));
	dlog_writer_close(&w);
	ok(w.fd == -1, "%s: dlog_writer_close leaves fd -1", mode);
	dlog_writer_close(&w); /* a second close is harmless */

	b = slurp(path, &len);
	ok(b != NULL && len == DLOG_HDR_SIZE + DLOG_PREALLOC,
	   "%s: segment read back, still %zu bytes (%zu records fit the preallocation)", mode, len, total);
	if (b == NULL || len < DLOG_HDR_SIZE + total * DLOG_REC_SIZE)
		goto out; /* checked just above */
	rc = dlog_hdr_decode(b, DLOG_HDR_SIZE, &h);
	ok(rc == 0 && h.session_id == UINT64_C(0x5e551011) + sync_each && (uint64_t)h.pid == pid &&
		   h.start == UINT64_C(123456789) + sync_each && h.salt == w.salt && h.lost_pairs == 0 &&
		   h.lost_events == 0,
	   "%s: header decodes with the session_id, pid, start and salt given, no lost pair (rc %d)",
	   mode, rc);

	s.hits = calloc(total, 1);
	s.last_seq = calloc((size_t)nthreads, sizeof(*s.last_seq));
	if (s.hits == NULL || s.last_seq == NULL) {
		ok(0, "%s: calloc", mode);
		goto out;
	}
	n = dlog_scan(b + DLOG_HDR_SIZE, len - DLOG_HDR_SIZE, w.salt, 1, on_app_rec, &s, &res);
	for (size_t i = 0; i < total; i++)
		missing += s.hits[i] == 0;
	ok(n == total && s.n == total && res.valid == total * DLOG_REC_SIZE &&
		   res.next_seq == total + 1 && res.end == DLOG_END_CLEAN,
	   "%s: dlog_scan of the file: %zu records, seqs 1..%zu contiguous, %s", mode, n, total,
	   end_name(res.end));
	ok(s.bad == 0 && s.dup == 0 && missing == 0,
	   "%s: every appended (pair, first, count) appears exactly once (%zu bad, %zu twice, %zu missing)",
	   mode, s.bad, s.dup, missing);
	ok(s.order == 0, "%s: each thread's records are in its append order (%zu out of order)", mode,
	   s.order);
	ok(all_zero(b + DLOG_HDR_SIZE + total * DLOG_REC_SIZE,
		    len - DLOG_HDR_SIZE - total * DLOG_REC_SIZE),
	   "%s: the preallocated tail after the records reads as zeros", mode);

out:
	free(s.hits);
	free(s.last_seq);
	free(b);
	if (dfd >= 0)
		close(dfd);
	unlink(path);
}

static void test_writer_create(void)
{
	struct dlog_writer w, w2;
	struct dlog_hdr h;
	char path[PATH_MAX], missing[PATH_MAX];
	struct stat st;
	int rc;

	snprintf(path, sizeof(path), "%s/existing.seg", scratch);
	rc = dlog_writer_create(&w, -1, path, 11, 22, 33, false);
	ok(rc == 0, "dlog_writer_create with dirfd -1 (rc %d)", rc);
	if (rc < 0)
		return;
	rc = dlog_append(&w, 3, 40, 2);
	ok(rc == 0, "one append (rc %d)", rc);

	rc = dlog_writer_create(&w2, -1, path, 99, 98, 97, true);
	ok(rc == -EEXIST && w2.fd < 0, "create on an existing path: -EEXIST (rc %d)", rc);
	rc = read_hdr(path, &h);
	ok(rc == 0 && h.session_id == 11 && h.pid == 22 && h.start == 33 && stat(path, &st) == 0 &&
		   st.st_size == (off_t)(DLOG_HDR_SIZE + DLOG_PREALLOC),
	   "the failed create left the existing segment in place and unchanged (rc %d)", rc);
	{
		size_t len;
		uint8_t *b = slurp(path, &len);
		struct dlog_scan res;
		struct collect c = { .n = 0 };
		size_t n = 0;

		if (b != NULL && len >= DLOG_HDR_SIZE)
			n = scan_exact(b + DLOG_HDR_SIZE, 4 * DLOG_REC_SIZE, w.salt, 1, &res, &c);
		ok(b != NULL && n == 1 && c.recs[0].pair == 3 && c.recs[0].first == 40 &&
			   c.recs[0].count == 2 && c.recs[0].seq == 1,
		   "its record is still there (%zu)", n);
		free(b);
	}
	dlog_writer_close(&w);
	unlink(path);

	snprintf(missing, sizeof(missing), "%s/no-such-dir/x.seg", scratch);
	rc = dlog_writer_create(&w2, -1, missing, 1, 2, 3, false);
	ok(rc == -ENOENT && w2.fd < 0, "create in a missing directory: -ENOENT (rc %d)", rc);
}

/* Appends past the first preallocation grow the file by DLOG_PREALLOC and
 * the seqs stay contiguous across the boundary. */
static void test_writer_growth(void)
{
	const char *dir = have_shm ? shm_scratch : scratch;
	size_t total = SLOTS_PER_PREALLOC + 100, len = 0, n = 0;
	struct dlog_writer w;
	struct dlog_scan res;
	struct seen s = { .nthreads = 1, .per_thread = (int)total, .seq_expect = 1 };
	char path[PATH_MAX];
	uint8_t *b = NULL;
	int rc, fails = 0;

	snprintf(path, sizeof(path), "%s/grow.seg", dir);
	rc = dlog_writer_create(&w, -1, path, 5, 6, 7, false);
	ok(rc == 0, "growth: create in %s (rc %d)", dir, rc);
	if (rc < 0)
		return;
	for (size_t i = 0; i < total; i++)
		fails += dlog_append(&w, 0, i, app_count((uint32_t)i)) != 0;
	dlog_writer_close(&w);
	b = slurp(path, &len);
	ok(fails == 0 && b != NULL && len == DLOG_HDR_SIZE + 2 * (size_t)DLOG_PREALLOC,
	   "growth: %zu appends returned 0 and the file grew to %zu bytes (%d failed)", total, len, fails);
	s.hits = calloc(total, 1);
	s.last_seq = calloc(1, sizeof(*s.last_seq));
	if (b != NULL && len > DLOG_HDR_SIZE && s.hits != NULL && s.last_seq != NULL)
		n = dlog_scan(b + DLOG_HDR_SIZE, len - DLOG_HDR_SIZE, w.salt, 1, on_app_rec, &s, &res);
	ok(n == total && s.bad == 0 && s.dup == 0 && s.order == 0 && res.end == DLOG_END_CLEAN,
	   "growth: all %zu records decode in order across the preallocation boundary (%zu, %zu bad)",
	   total, n, s.bad);
	free(s.hits);
	free(s.last_seq);
	free(b);
	unlink(path);
}

/*
 * The script: the first scripted fdatasync (thread A) says it has begun,
 * waits until thread B's append returned (at most a second: with the rule
 * in place B waits for A) and returns a_rc; the second (B's) returns b_rc
 * at once.  posix_fallocate fails with ENOSPC while `full` is set.
 */
static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool on, full, a_in, b_returned;
	int calls, a_rc, b_rc;
} sc = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

int fdatasync(int fd)
{
	struct timespec until;
	int n, rc;

	pthread_mutex_lock(&sc.mu);
	if (!sc.on) {
		pthread_mutex_unlock(&sc.mu);
		return (int)syscall(SYS_fdatasync, fd);
	}
	n = ++sc.calls;
	if (n == 1) {
		sc.a_in = true;
		pthread_cond_broadcast(&sc.cv);
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 1;
		while (!sc.b_returned && pthread_cond_timedwait(&sc.cv, &sc.mu, &until) == 0)
			;
		rc = sc.a_rc;
	} else {
		rc = n == 2 ? sc.b_rc : 0;
	}
	pthread_mutex_unlock(&sc.mu);
	if (rc < 0) {
		errno = -rc;
		return -1;
	}
	return 0;
}

int posix_fallocate(int fd, off_t off, off_t len)
{
	static int (*real)(int, off_t, off_t);
	bool full;

	pthread_mutex_lock(&sc.mu);
	full = sc.full;
	pthread_mutex_unlock(&sc.mu);
	if (full)
		return ENOSPC;
	if (real == NULL)
		real = (int (*)(int, off_t, off_t))dlsym(RTLD_NEXT, "posix_fallocate");
	return real != NULL ? real(fd, off, len) : ENOSYS;
}

static void script(bool on, int a_rc, int b_rc)
{
	pthread_mutex_lock(&sc.mu);
	sc.on = on;
	sc.full = false;
	sc.a_in = sc.b_returned = false;
	sc.calls = 0;
	sc.a_rc = a_rc;
	sc.b_rc = b_rc;
	pthread_mutex_unlock(&sc.mu);
}

struct racer {
	struct dlog_writer *w;
	uint64_t first;
	int rc;
};

static void *racer_a(void *arg)
{
	struct racer *r = arg;

	r->rc = dlog_append(r->w, 0, r->first, 1);
	return NULL;
}

/* B: once A is in its fdatasync, append (out of space when `full`). */
static void race_b(struct dlog_writer *w, uint64_t first, bool full, int *rc)
{
	pthread_mutex_lock(&sc.mu);
	while (!sc.a_in)
		pthread_cond_wait(&sc.cv, &sc.mu);
	pthread_mutex_unlock(&sc.mu);
	if (full) {
		pthread_mutex_lock(&w->mu);
		w->prealloc_end = w->tail; /* the next record needs new space */
		pthread_mutex_unlock(&w->mu);
		pthread_mutex_lock(&sc.mu);
		sc.full = true;
		pthread_mutex_unlock(&sc.mu);
	}
	*rc = dlog_append(w, 0, first, 1);
	pthread_mutex_lock(&sc.mu);
	sc.b_returned = true;
	pthread_cond_broadcast(&sc.cv);
	pthread_mutex_unlock(&sc.mu);
}

/*
 * Two fdatasyncs of one segment at once, and the writeback error that
 * dropped A's record reported to B's: the kernel tells one caller.
 *   sync_each: A's sync fails, B's succeeds and returns first.  B must not
 *     trust its success until A's failure is known: both appends fail.
 *   group commit: A leads a group sync; B, out of space, writes the
 *     header's loss flag and its fdatasync fails.  A's sync then succeeds,
 *     and must not make A's record durable: both fail.
 * Every append after either fails with EIO.
 */
static void test_sync_race(bool sync_each)
{
	const char *mode = sync_each ? "sync_each" : "group commit with a full disk";
	char path[PATH_MAX];
	struct dlog_writer w;
	struct racer a;
	pthread_t t;
	int rc, rc_b = 1, rc_next;

	snprintf(path, sizeof(path), "%s/syncrace-%d.seg", scratch, (int)sync_each);
	rc = dlog_writer_create(&w, -1, path, 8, 9, 10, sync_each);
	ok(rc == 0, "%s, sync race: create (rc %d)", mode, rc);
	if (rc < 0)
		return;
	rc = dlog_append(&w, 0, 1, 1);
	ok(rc == 0, "%s, sync race: an append before the race is durable (rc %d)", mode, rc);
	if (sync_each)
		script(true, -EIO, 0);
	else
		script(true, 0, -EIO);
	a = (struct racer){ .w = &w, .first = 2, .rc = 1 };
	if (pthread_create(&t, NULL, racer_a, &a) != 0) {
		script(false, 0, 0);
		ok(0, "%s, sync race: start thread A", mode);
		dlog_writer_close(&w);
		return;
	}
	race_b(&w, 3, !sync_each, &rc_b);
	pthread_join(t, NULL);
	script(false, 0, 0);
	rc_next = dlog_append(&w, 0, 4, 1);
	if (sync_each)
		ok(a.rc == -EIO && rc_b == -EIO,
		   "%s: A's sync failed and B's succeeded first: both appends fail with EIO (A %d, B %d)",
		   mode, a.rc, rc_b);
	else
		ok(rc_b == -ENOSPC && a.rc == -EIO,
		   "%s: B's header sync failed, A's group sync succeeded after: B fails with ENOSPC, A "
		   "with EIO (B %d, A %d)", mode, rc_b, a.rc);
	ok(rc_next == -EIO, "%s: the next append fails with EIO (%d)", mode, rc_next);
	dlog_writer_close(&w);
	unlink(path);
}

/* A failed fdatasync is sticky: the append it was for fails with the real
 * errno, and every later append fails with EIO, even once the fd could be
 * synced again (the kernel reports a writeback error once, to one caller).
 * /dev/null takes the record's pwrite and refuses fdatasync (EINVAL). */
static void test_sync_failure(bool sync_each)
{
	const char *mode = sync_each ? "sync_each" : "group commit";
	char path[PATH_MAX];
	struct dlog_writer w;
	int rc, null, real, r1, r2, r3;

	snprintf(path, sizeof(path), "%s/syncfail-%d.seg", scratch, (int)sync_each);
	rc = dlog_writer_create(&w, -1, path, 5, 6, 7, sync_each);
	ok(rc == 0, "%s, failed sync: create (rc %d)", mode, rc);
	if (rc < 0)
		return;
	null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	r1 = dlog_append(&w, 0, 1, 1);
	real = w.fd;
	w.fd = null;
	r2 = dlog_append(&w, 0, 2, 1);
	w.fd = real;
	r3 = dlog_append(&w, 0, 3, 1);
	ok(null >= 0 && r1 == 0 && r2 == -EINVAL && r3 == -EIO,
	   "%s: an append before the failed sync returns 0, the one it was for its errno, the next "
	   "-EIO on a sound fd (%d, %d, %d)", mode, r1, r2, r3);
	if (null >= 0)
		close(null);
	dlog_writer_close(&w);
	unlink(path);
}

static void on_last(const struct dlog_rec *r, void *arg)
{
	struct dlog_rec *last = arg;

	if (r->first == 0xdead || r->first == 0xbeef)
		last->count = 0; /* a lost append must not be in the log */
	else
		*last = *r;
}

/*
 * The full-disk rule on a tmpfs sized so that the segment's first
 * preallocation fits with a little to spare but the second does not; a
 * filler file, removed at the end, gives room to resume.
 */
static void test_full_disk(void)
{
	char dir[256], path[PATH_MAX], filler[PATH_MAX], opts[64], why[256];
	long page = sysconf(_SC_PAGESIZE);
	size_t slack = 64 * 1024, size, len, n;
	struct dlog_writer w = { .fd = -1 };
	struct dlog_hdr h = { .magic = 0 };
	struct dlog_scan res;
	struct dlog_rec last;
	uint8_t *b;
	size_t nok = 0;
	int rc, fd;
	bool have_w = false;

	if (page <= 0)
		page = 4096;
	snprintf(dir, sizeof(dir), "%s/full", scratch);
	snprintf(path, sizeof(path), "%s/seg", dir);
	snprintf(filler, sizeof(filler), "%s/filler", dir);
	size = DLOG_HDR_SIZE + 2 * (size_t)DLOG_PREALLOC + slack;
	size = (size + (size_t)page - 1) / (size_t)page * (size_t)page;
	snprintf(opts, sizeof(opts), "size=%zu,mode=0700", size);
	if (mkdir(dir, 0700) < 0) {
		ok(0, "mkdir %s: %s", dir, strerror(errno));
		return;
	}
	if (mount("u-dlog", dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts) < 0) {
		snprintf(why, sizeof(why), "full-disk rule: cannot mount a small tmpfs (%s)", strerror(errno));
		skip(why);
		rmdir(dir);
		return;
	}

	fd = open(filler, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	rc = fd < 0 ? errno : posix_fallocate(fd, 0, DLOG_PREALLOC);
	if (fd >= 0)
		close(fd);
	ok(rc == 0, "full disk: a %u-byte filler on a %zu-byte tmpfs (%s)", DLOG_PREALLOC, size, strerror(rc));
	if (rc != 0)
		goto out;
	rc = dlog_writer_create(&w, -1, path, 0xf011, 31, 32, false);
	ok(rc == 0, "full disk: create the segment (rc %d)", rc);
	if (rc < 0)
		goto out;
	have_w = true;

	/* the preallocation takes SLOTS_PER_PREALLOC records; the next needs new space */
	for (rc = 0; rc == 0 && nok <= SLOTS_PER_PREALLOC; nok += rc == 0)
		rc = dlog_append(&w, 2, nok, 1);
	ok(nok == SLOTS_PER_PREALLOC, "full disk: the %u preallocated slots were appended (%zu)",
	   SLOTS_PER_PREALLOC, nok);
	ok(rc == 1, "full disk: the append that needs new space returns 1 (rc %d)", rc);
	/* that was pair 2; now the ones the checks below look for */
	rc = dlog_append(&w, 5, 0xdead, 3);
	ok(rc == 1, "full disk: an append for pair 5 returns 1 (rc %d)", rc);
	rc = read_hdr(path, &h);
	ok(rc == 0 && h.lost_pairs == ((UINT64_C(1) << 2) | (UINT64_C(1) << 5)) && h.session_id == 0xf011,
	   "full disk: the header on disk decodes with lost_pairs bits 2 and 5 (rc %d, lost_pairs %#" PRIx64 ")",
	   rc, h.lost_pairs);
	rc = dlog_append(&w, 63, 0xbeef, 1);
	ok(rc == 1, "full disk: an append for pair 63 returns 1 (rc %d)", rc);
	rc = read_hdr(path, &h);
	ok(rc == 0 && h.lost_pairs == ((UINT64_C(1) << 2) | (UINT64_C(1) << 5) | (UINT64_C(1) << 63)),
	   "full disk: lost_pairs gains bit 63 and keeps the others (%#" PRIx64 ")", h.lost_pairs);

	b = slurp(path, &len);
	n = 0;
	last = (struct dlog_rec){ 0 };
	if (b != NULL && len > DLOG_HDR_SIZE)
		n = dlog_scan(b + DLOG_HDR_SIZE, len - DLOG_HDR_SIZE, w.salt, 1, on_last, &last, &res);
	ok(b != NULL && len == DLOG_HDR_SIZE + DLOG_PREALLOC && n == SLOTS_PER_PREALLOC &&
		   res.end == DLOG_END_CLEAN && last.seq == SLOTS_PER_PREALLOC && last.count == 1,
	   "full disk: the segment holds exactly the %zu appended records, none of the lost ones (%zu bytes, %s)",
	   n, len, end_name(res.end));
	free(b);

	/* room again: appends resume in the next slot; the lost flags stay */
	ok(unlink(filler) == 0, "full disk: filler removed");
	rc = dlog_append(&w, 7, 0x700, 4);
	ok(rc == 0, "full disk: with space again an append returns 0 (rc %d)", rc);
	b = slurp(path, &len);
	n = 0;
	last = (struct dlog_rec){ 0 };
	if (b != NULL && len > DLOG_HDR_SIZE)
		n = dlog_scan(b + DLOG_HDR_SIZE, len - DLOG_HDR_SIZE, w.salt, 1, on_last, &last, &res);
	ok(n == SLOTS_PER_PREALLOC + 1 && last.seq == SLOTS_PER_PREALLOC + 1 && last.pair == 7 &&
		   last.first == 0x700 && last.count == 4 && res.end == DLOG_END_CLEAN &&
		   len == DLOG_HDR_SIZE + 2 * (size_t)DLOG_PREALLOC,
	   "full disk: it lands in slot %u with the next seq (%zu records, seq %" PRIu64 ")",
	   SLOTS_PER_PREALLOC + 1, n, last.seq);
	rc = b != NULL ? dlog_hdr_decode(b, DLOG_HDR_SIZE, &h) : -EIO;
	ok(rc == 0 && h.lost_pairs == ((UINT64_C(1) << 2) | (UINT64_C(1) << 5) | (UINT64_C(1) << 63)),
	   "full disk: the lost_pairs bits stay set (%#" PRIx64 ")", h.lost_pairs);
	free(b);

out:
	if (have_w)
		dlog_writer_close(&w);
	unlink(path);
	unlink(filler);
	rc = umount2(dir, 0);
	ok(rc == 0, "full disk: tmpfs unmounted (%s)", rc == 0 ? "ok" : strerror(errno));
	rmdir(dir);
}

/* ---- names ---- */

static void test_seg_name(void)
{
	char buf[64];
	char *exact;
	int rc;

	rc = dlog_seg_name(1234, 5678, buf, sizeof(buf));
	ok(rc == 0 && strcmp(buf, "1234-5678.seg") == 0, "dlog_seg_name(1234, 5678): \"%s\" (rc %d)",
	   rc == 0 ? buf : "", rc);
	rc = dlog_seg_name(INT32_MAX, UINT64_MAX, buf, sizeof(buf));
	ok(rc == 0 && strcmp(buf, "2147483647-18446744073709551615.seg") == 0,
	   "dlog_seg_name of the largest pid and start: \"%s\" (rc %d)", rc == 0 ? buf : "", rc);
	rc = dlog_seg_name(1, 0, buf, sizeof(buf));
	ok(rc == 0 && strcmp(buf, "1-0.seg") == 0, "dlog_seg_name(1, 0): \"%s\"", rc == 0 ? buf : "");

	/* exactly big enough, then one byte short: exact heap buffers */
	exact = malloc(sizeof("1234-5678.seg"));
	if (exact == NULL) {
		ok(0, "malloc");
		return;
	}
	rc = dlog_seg_name(1234, 5678, exact, sizeof("1234-5678.seg"));
	ok(rc == 0 && strcmp(exact, "1234-5678.seg") == 0, "a buffer of exactly the size: 0 (rc %d)", rc);
	rc = dlog_seg_name(1234, 5678, exact, sizeof("1234-5678.seg") - 1);
	ok(rc == -ENAMETOOLONG, "a buffer one byte short: -ENAMETOOLONG (rc %d)", rc);
	free(exact);
	memset(buf, 'x', sizeof(buf));
	rc = dlog_seg_name(1234, 5678, buf, 0);
	ok(rc == -ENAMETOOLONG && buf[0] == 'x', "a zero-length buffer: -ENAMETOOLONG, nothing written (rc %d)",
	   rc);
	rc = dlog_seg_name(1234, 5678, buf, 5);
	ok(rc == -ENAMETOOLONG && buf[5] == 'x', "a 5-byte buffer: -ENAMETOOLONG, nothing past it (rc %d)", rc);
}

/* ---- scratch ---- */

static void dir_remove(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char path[PATH_MAX];

	while (d != NULL && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (unlink(path) < 0 && errno == EISDIR)
			rmdir(path);
	}
	if (d != NULL)
		closedir(d);
	rmdir(dir);
}

int main(void)
{
	const char *env = getenv("VOLMIG_TEST_SEED");

	seed = (env != NULL && *env != '\0') ? strtoull(env, NULL, 0)
					     : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	printf("# seed %" PRIu64 " (set VOLMIG_TEST_SEED to repeat)\n", seed);
	if (mkdtemp(scratch) == NULL) {
		ok(0, "mkdtemp %s", scratch);
		return tap_done();
	}
	have_shm = mkdtemp(shm_scratch) != NULL;

	test_hdr();
	test_rec_encode();
	test_scan_basic();
	test_scan_torn_corrupt();
	test_scan_rejects();
	test_scan_partial_first_seq();
	test_scan_hostile();
	writer_run(scratch, false, APP_THREADS, APP_PER_THREAD);
	writer_run(scratch, true, 4, 50);
	test_writer_create();
	test_writer_growth();
	test_sync_failure(false);
	test_sync_failure(true);
	test_sync_race(true);
	test_sync_race(false);
	test_full_disk();
	test_seg_name();

	if (have_shm)
		dir_remove(shm_scratch);
	dir_remove(scratch);
	return tap_done();
}
