/*
 * fuzz target "dlog": the dirty-log decoders of lib/dlog.h, dlog_scan and
 * dlog_hdr_decode, on torn and hostile bytes.
 *
 * Input:
 *   byte 0    bit 0: header mode: a 64-byte segment header follows; it is
 *             decoded, and the records after it are scanned with the salt
 *             it holds, from seq 1 (as the copier's ingest does).  Without
 *             bit 0: u64 salt, u64 first_seq, then records (ingest resuming
 *             at a later offset).
 *             bit 1 (header mode): make the header well-formed first
 *             (magic, version, size, checksum), so mutations reach its
 *             fields.
 *             bits 2..7: recompute the checksum of that many leading record
 *             slots before scanning, so mutations reach the seq, count and
 *             range rules behind the checksum.
 *   then      the header or salt and first_seq; the rest is record bytes.
 *
 * Contract asserted (dlog.h): the header decoder accepts exactly a header
 * with the right magic, version, size and checksum, and what it accepts
 * re-encodes to the same bytes.  dlog_scan accepts exactly the longest valid
 * prefix: valid <= len and a multiple of 32; every record it hands out is
 * the slot's bytes (re-encoding it with the salt gives them back, so its
 * checksum recomputes), with consecutive seqs from first_seq, count >= 1 and
 * no overflowing range; the slot after the prefix (if whole) is all zero
 * (clean end) or breaks a rule (torn when only zeros follow it, corrupt
 * otherwise, bad_off naming it).  Checked against a reference written here
 * from the format, plus: re-scanning the valid prefix gives the same
 * records and a clean end; scanning in two steps (ingest resuming at a
 * record boundary with the next seq) gives the same as one scan; cutting
 * the bytes anywhere (a torn read) never adds or reorders records; the
 * callback-less scan counts the same.
 */
#define FUZZ_NAME "dlog"
#include "fuzz.h"

#include "dlog.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

#define HDR_BODY 56 /* header bytes covered by its checksum */
#define HDR_LEN (HDR_BODY + 8)
#define MAX_RECS 4096

struct seen {
	struct dlog_rec recs[MAX_RECS];
	size_t n;
	bool overflow;
};

static void collect(const struct dlog_rec *r, void *arg)
{
	struct seen *s = arg;

	if (s->n < MAX_RECS)
		s->recs[s->n] = *r;
	else
		s->overflow = true;
	s->n++;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != 0)
			return false;
	return true;
}

/* The format's rules for one slot, written from dlog.h. */
static bool slot_valid(const uint8_t *p, uint64_t salt, uint64_t seq)
{
	uint64_t count = fz_le(p + 12, 4), first = fz_le(p + 16, 8);

	return fz_le(p + 24, 8) == XXH3_64bits_withSeed(p, 24, salt) && fz_le(p, 8) == seq &&
	       count >= 1 && first <= UINT64_MAX - count;
}

/* What dlog_scan must answer, from the rules above. */
static void reference_scan(const uint8_t *buf, size_t len, uint64_t salt, uint64_t first_seq,
			   size_t *n, struct dlog_scan *res)
{
	size_t off = 0;

	*n = 0;
	res->end = DLOG_END_CLEAN;
	res->bad_off = 0;
	while (len - off >= DLOG_REC_SIZE && !all_zero(buf + off, DLOG_REC_SIZE)) {
		if (!slot_valid(buf + off, salt, first_seq + *n)) {
			res->end = all_zero(buf + off + DLOG_REC_SIZE, len - off - DLOG_REC_SIZE)
					   ? DLOG_END_TORN
					   : DLOG_END_CORRUPT;
			res->bad_off = off;
			break;
		}
		off += DLOG_REC_SIZE;
		(*n)++;
	}
	res->valid = off;
	res->next_seq = first_seq + *n;
}

static size_t scan(const uint8_t *buf, size_t len, uint64_t salt, uint64_t first_seq,
		   struct seen *s, struct dlog_scan *res)
{
	size_t n;

	s->n = 0;
	s->overflow = false;
	memset(res, 0xa5, sizeof(*res)); /* every field must be filled */
	n = dlog_scan(buf, len, salt, first_seq, collect, s, res);
	FUZZ_CHECK(n == s->n, "returned %zu records but called back %zu times", n, s->n);
	return n;
}

static void check_scan(const uint8_t *buf, size_t len, uint64_t salt, uint64_t first_seq)
{
	static struct seen s, s2;
	struct dlog_scan res, ref, res2;
	size_t n, ref_n, n2;
	uint8_t enc[DLOG_REC_SIZE];

	n = scan(buf, len, salt, first_seq, &s, &res);
	FUZZ_CHECK(res.valid <= len && res.valid % DLOG_REC_SIZE == 0,
		   "valid %zu of %zu bytes is not a whole number of records within the input",
		   res.valid, len);
	FUZZ_CHECK(res.valid == n * DLOG_REC_SIZE, "%zu records but valid = %zu", n, res.valid);
	FUZZ_CHECK(res.next_seq == first_seq + n, "next_seq %llu after %zu records from %llu",
		   (unsigned long long)res.next_seq, n, (unsigned long long)first_seq);
	FUZZ_CHECK(res.end == DLOG_END_CLEAN || res.end == DLOG_END_TORN ||
			   res.end == DLOG_END_CORRUPT,
		   "end %d is not an enum dlog_end", (int)res.end);

	/* each record handed out is exactly its slot, and valid by the format */
	for (size_t i = 0; i < n && i < MAX_RECS; i++) {
		const struct dlog_rec *r = &s.recs[i];

		FUZZ_CHECK(r->seq == first_seq + i, "record %zu has seq %llu, want %llu", i,
			   (unsigned long long)r->seq, (unsigned long long)(first_seq + i));
		FUZZ_CHECK(r->count >= 1 && r->first <= UINT64_MAX - r->count,
			   "record %zu: regions [%llu, +%u) are not a range", i,
			   (unsigned long long)r->first, r->count);
		dlog_rec_encode(r, salt, enc);
		FUZZ_CHECK(memcmp(enc, buf + i * DLOG_REC_SIZE, DLOG_REC_SIZE) == 0,
			   "record %zu does not re-encode to its slot (checksum or fields differ)",
			   i);
		FUZZ_CHECK(slot_valid(buf + i * DLOG_REC_SIZE, salt, first_seq + i),
			   "record %zu accepted although its slot breaks the format", i);
	}

	/* the longest valid prefix, no more and no less */
	reference_scan(buf, len, salt, first_seq, &ref_n, &ref);
	FUZZ_CHECK(n == ref_n, "accepted %zu records, the format allows exactly %zu", n, ref_n);
	FUZZ_CHECK(res.end == ref.end, "end %d, the format says %d", (int)res.end, (int)ref.end);
	if (res.end != DLOG_END_CLEAN)
		FUZZ_CHECK(res.bad_off == ref.bad_off && res.bad_off == res.valid,
			   "bad_off %zu, the bad record is at %zu", res.bad_off, ref.bad_off);

	/* the same without a callback */
	n2 = dlog_scan(buf, len, salt, first_seq, NULL, NULL, &res2);
	FUZZ_CHECK(n2 == n && res2.valid == res.valid && res2.end == res.end,
		   "the scan without a callback differs (%zu records, %zu bytes)", n2, res2.valid);

	/* re-scanning the valid prefix gives the same records and a clean end */
	n2 = scan(buf, res.valid, salt, first_seq, &s2, &res2);
	FUZZ_CHECK(n2 == n && res2.valid == res.valid && res2.end == DLOG_END_CLEAN &&
			   res2.next_seq == res.next_seq,
		   "re-scan of the %zu-byte valid prefix: %zu records, end %d", res.valid, n2,
		   (int)res2.end);
	FUZZ_CHECK(memcmp(s.recs, s2.recs, (n < MAX_RECS ? n : MAX_RECS) * sizeof(s.recs[0])) == 0,
		   "re-scan of the valid prefix decoded other records");

	/* ingest in two steps, resuming at a record boundary, equals one scan */
	if (n > 0) {
		size_t k = n / 2 + 1, off = k * DLOG_REC_SIZE;

		n2 = scan(buf + off, len - off, salt, first_seq + k, &s2, &res2);
		FUZZ_CHECK(n2 == n - k && res2.valid == res.valid - off && res2.end == res.end &&
				   res2.next_seq == res.next_seq,
			   "resuming after %zu records: %zu more, end %d (one scan: %zu, end %d)",
			   k, n2, (int)res2.end, n, (int)res.end);
		if (res.end != DLOG_END_CLEAN)
			FUZZ_CHECK(res2.bad_off == res.bad_off - off,
				   "resuming after %zu records: bad_off %zu, want %zu", k,
				   res2.bad_off, res.bad_off - off);
	}

	/* a torn read (the bytes cut anywhere) never adds or reorders records */
	{
		size_t cuts[] = { 0, 1, DLOG_REC_SIZE - 1, DLOG_REC_SIZE, DLOG_REC_SIZE + 1,
				  res.valid / 2, res.valid ? res.valid - 1 : 0, res.valid + 1,
				  res.valid + DLOG_REC_SIZE - 1, len ? len - 1 : 0 };

		for (size_t c = 0; c < sizeof(cuts) / sizeof(cuts[0]); c++) {
			size_t t = cuts[c], want, kept;

			if (t > len)
				continue;
			want = t / DLOG_REC_SIZE < n ? t / DLOG_REC_SIZE : n;
			kept = want < MAX_RECS ? want : MAX_RECS;
			n2 = scan(buf, t, salt, first_seq, &s2, &res2);
			FUZZ_CHECK(n2 == want && res2.valid == want * DLOG_REC_SIZE,
				   "cut at %zu bytes: %zu records, want %zu", t, n2, want);
			FUZZ_CHECK(memcmp(s.recs, s2.recs, kept * sizeof(s.recs[0])) == 0,
				   "cut at %zu bytes: other records", t);
		}
	}
}

/* The header rules, written from dlog.h. */
static bool hdr_valid(const uint8_t *p, size_t len)
{
	return len >= HDR_LEN && fz_le(p, 8) == DLOG_MAGIC && fz_le(p + 8, 4) == DLOG_VERSION &&
	       fz_le(p + 12, 4) == DLOG_HDR_SIZE &&
	       fz_le(p + HDR_BODY, 8) == XXH3_64bits(p, HDR_BODY);
}

/* Decode a header of len bytes (an exact heap copy); its salt, or the raw
 * salt bytes when it is rejected. */
static uint64_t check_hdr(const uint8_t *data, size_t len, bool fix, bool *ok)
{
	static uint8_t enc[DLOG_HDR_SIZE];
	uint8_t *h = malloc(len ? len : 1);
	struct dlog_hdr hdr;
	uint64_t salt;
	int rc;

	if (h == NULL)
		abort();
	memcpy(h, data, len);
	if (fix && len >= HDR_LEN) {
		fz_put(h, DLOG_MAGIC, 8);
		fz_put(h + 8, DLOG_VERSION, 4);
		fz_put(h + 12, DLOG_HDR_SIZE, 4);
		fz_put(h + HDR_BODY, XXH3_64bits(h, HDR_BODY), 8);
	}
	memset(&hdr, 0xa5, sizeof(hdr));
	rc = dlog_hdr_decode(h, len, &hdr);
	FUZZ_CHECK(rc == 0 || rc == -EBADMSG, "header decode returned %d", rc);
	FUZZ_CHECK((rc == 0) == hdr_valid(h, len), "header %s although it is %s",
		   rc == 0 ? "accepted" : "rejected", hdr_valid(h, len) ? "valid" : "invalid");
	if (rc == 0) {
		FUZZ_CHECK(hdr.salt == fz_le(h + 24, 8) && hdr.session_id == fz_le(h + 16, 8) &&
				   (uint32_t)hdr.pid == fz_le(h + 32, 4) &&
				   hdr.lost_events == fz_le(h + 36, 4) && hdr.start == fz_le(h + 40, 8) &&
				   hdr.lost_pairs == fz_le(h + 48, 8),
			   "decoded header fields differ from their bytes");
		dlog_hdr_encode(&hdr, enc);
		FUZZ_CHECK(memcmp(enc, h, HDR_LEN) == 0 &&
				   all_zero(enc + HDR_LEN, DLOG_HDR_SIZE - HDR_LEN),
			   "an accepted header does not re-encode to its bytes");
	}
	salt = len >= 32 ? fz_le(h + 24, 8) : 0;
	*ok = rc == 0;
	free(h);
	return salt;
}

static int fuzz_one(const uint8_t *data, size_t len)
{
	uint64_t salt, first_seq = 1;
	const uint8_t *recs;
	size_t nrec, fix;
	uint8_t *buf;
	bool accepted = false;

	if (len < 1)
		return 0;
	if (data[0] & 1) {
		size_t hl = len - 1 < HDR_LEN ? len - 1 : HDR_LEN;

		salt = check_hdr(data + 1, hl, data[0] & 2, &accepted);
		recs = data + 1 + hl;
	} else {
		if (len < 17)
			return 0;
		salt = fz_le(data + 1, 8);
		first_seq = fz_le(data + 9, 8);
		recs = data + 17;
	}
	nrec = len - (size_t)(recs - data);
	buf = malloc(nrec ? nrec : 1);
	if (buf == NULL)
		abort();
	memcpy(buf, recs, nrec);
	fix = data[0] >> 2;
	for (size_t i = 0; i < fix && (i + 1) * DLOG_REC_SIZE <= nrec; i++) {
		uint8_t *p = buf + i * DLOG_REC_SIZE;

		fz_put(p + 24, XXH3_64bits_withSeed(p, 24, salt), 8);
	}
	check_scan(buf, nrec, salt, first_seq);
	{
		struct dlog_scan res;

		accepted |= dlog_scan(buf, nrec, salt, first_seq, NULL, NULL, &res) > 0;
	}
	free(buf);
	return accepted;
}
