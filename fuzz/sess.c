/*
 * fuzz target "sess": the session-record decoder of lib/sess.h, the one
 * place that trusts no byte of the record read back from Berkeley DB.
 *
 * Input:
 *   byte 0    bit 7 clear: raw mode.  The rest is a record, decoded as is,
 *             after two optional repairs so that mutations get past the
 *             framing: bit 0 stores the input's length in the length field,
 *             bit 1 recomputes the trailing XXH3-64 checksum.
 *             bit 7 set: structured mode.  The rest describes a session
 *             (state, region shift, flags, id, creation time, then per pair
 *             sizes, identities and paths), which is built with
 *             sess_add_pair, encoded with sess_encode and decoded again.
 *
 * Contract asserted (sess.h): sess_decode returns 0, -EBADMSG,
 * -EPROTONOSUPPORT or -ENOMEM, and on failure leaves no allocation behind
 * (after -EPROTONOSUPPORT only the version is set, and the record was
 * intact: right magic, length and checksum).  What it accepts is a
 * well-formed record: a state name exists for it, the region size is 4 KiB
 * to 1 GiB, 1..SESS_MAX_PAIRS pairs, non-empty NUL-free paths of at most
 * SESS_PATH_MAX bytes, known identity kinds; it re-encodes to exactly the
 * input bytes (so nothing is ignored and nothing is guessed), and no proper
 * prefix of it is accepted (every cut in its last 64 bytes is tried, and
 * 16 others).  In structured mode, a session that is valid
 * by those rules survives encode and decode unchanged, and one that breaks
 * them is refused with -EBADMSG.
 */
#define FUZZ_NAME "sess"
#include "fuzz.h"

#include "sess.h"

#include <xxhash.h>

#define SESS_MAGIC_BYTES "VMSR"

static void check_empty(const struct sess *s, uint32_t version)
{
	struct sess zero;

	memset(&zero, 0, sizeof(zero)); /* padding too: decode clears the whole struct */
	zero.version = version;
	FUZZ_CHECK(memcmp(s, &zero, sizeof(zero)) == 0,
		   "a refused record left fields or allocations in the struct");
}

static bool ident_ok(const struct sess_ident *id)
{
	return id->kind == SESS_KIND_FILE || id->kind == SESS_KIND_BLOCK;
}

static bool path_ok(const char *p)
{
	size_t n = strlen(p);

	return n >= 1 && n <= SESS_PATH_MAX;
}

static void check_accepted(const struct sess *s, const uint8_t *buf, size_t len)
{
	uint8_t *enc;
	size_t enc_len;
	struct sess again;
	int rc;

	FUZZ_CHECK(s->version == SESS_VERSION, "accepted version %u", s->version);
	FUZZ_CHECK(s->state < SESS_NSTATES && strcmp(sess_state_name(s->state), "unknown") != 0,
		   "accepted state %u", s->state);
	FUZZ_CHECK(s->region_shift >= 12 && s->region_shift <= 30, "accepted region shift %u",
		   s->region_shift);
	FUZZ_CHECK(s->npairs >= 1 && s->npairs <= SESS_MAX_PAIRS && s->pairs != NULL,
		   "accepted %u pairs", s->npairs);
	for (uint32_t i = 0; i < s->npairs; i++) {
		const struct sess_pair *p = &s->pairs[i];

		FUZZ_CHECK(p->source != NULL && p->target != NULL && path_ok(p->source) &&
				   path_ok(p->target),
			   "pair %u: accepted an empty, missing or too long path", i);
		FUZZ_CHECK(ident_ok(&p->source_id) && ident_ok(&p->target_id),
			   "pair %u: accepted identity kinds %u/%u", i, p->source_id.kind,
			   p->target_id.kind);
	}
	rc = sess_encode(s, &enc, &enc_len);
	FUZZ_CHECK(rc == 0, "re-encoding an accepted record failed: %d", rc);
	FUZZ_CHECK(enc_len == len && memcmp(enc, buf, len) == 0,
		   "an accepted record re-encodes to other bytes (%zu vs %zu)", enc_len, len);
	free(enc);

	/* no proper prefix is a record (a torn read is never taken for one):
	 * every cut in the last 64 bytes, and 16 spread over the rest */
	for (size_t k = 1; k <= 64 + 16 && k <= len; k++) {
		size_t cut = k <= 64 ? len - k : (len / 16) * (k - 65);

		rc = sess_decode(buf, cut, &again);
		FUZZ_CHECK(rc == -EBADMSG, "a %zu-byte prefix of an accepted record: %d", cut, rc);
		check_empty(&again, 0);
	}
}

/* Magic, length and checksum are right (whatever the version). */
static bool intact(const uint8_t *buf, size_t len)
{
	return len >= 20 && memcmp(buf, SESS_MAGIC_BYTES, 4) == 0 && fz_le(buf + 8, 4) == len &&
	       fz_le(buf + len - 8, 8) == XXH3_64bits(buf, len - 8);
}

static int decode_raw(const uint8_t *in, size_t len, unsigned fix)
{
	uint8_t *buf = malloc(len ? len : 1);
	struct sess s;
	int rc;

	if (buf == NULL)
		abort();
	memcpy(buf, in, len);
	if ((fix & 1) && len >= 12)
		fz_put(buf + 8, len, 4);
	if ((fix & 2) && len >= 8)
		fz_put(buf + len - 8, XXH3_64bits(buf, len - 8), 8);
	memset(&s, 0x5a, sizeof(s));
	rc = sess_decode(buf, len, &s);
	FUZZ_CHECK(rc == 0 || rc == -EBADMSG || rc == -EPROTONOSUPPORT || rc == -ENOMEM,
		   "decode returned %d", rc);
	if (rc == 0) {
		check_accepted(&s, buf, len);
		sess_release(&s);
	} else if (rc == -EPROTONOSUPPORT) {
		FUZZ_CHECK(intact(buf, len) && fz_le(buf + 4, 4) != SESS_VERSION,
			   "another version claimed for a damaged record or version %u",
			   (unsigned)fz_le(buf + 4, 4));
		check_empty(&s, (uint32_t)fz_le(buf + 4, 4));
	} else {
		check_empty(&s, 0);
	}
	free(buf);
	return rc == 0;
}

/* A path of up to 4200 bytes from the input (a NUL in it ends it early). */
static char *take_path(struct fz_in *in)
{
	size_t n = (size_t)(fz_take(in, 2) % 4200);
	char *p = malloc(n + 1);

	if (p == NULL)
		abort();
	for (size_t i = 0; i < n; i++)
		p[i] = (char)fz_take(in, 1);
	p[n] = '\0';
	if (n > 0 && in->end)
		memset(p, 'p', n); /* past the input: a plain long path */
	return p;
}

static void take_ident(struct fz_in *in, struct sess_ident *id)
{
	id->kind = (uint32_t)fz_take(in, 1);
	id->dev = fz_num(in);
	id->ino = fz_num(in);
	id->rdev = fz_num(in);
}

static bool same_pair(const struct sess_pair *a, const struct sess_pair *b)
{
	return strcmp(a->source, b->source) == 0 && strcmp(a->target, b->target) == 0 &&
	       a->size == b->size && a->target_size == b->target_size &&
	       a->reserve == b->reserve &&
	       memcmp(&a->source_id, &b->source_id, sizeof(a->source_id)) == 0 &&
	       memcmp(&a->target_id, &b->target_id, sizeof(a->target_id)) == 0;
}

static int structured(const uint8_t *data, size_t len)
{
	struct fz_in in = { .p = data, .len = len };
	struct sess s = { .version = SESS_VERSION }, back;
	unsigned npairs;
	bool valid = true;
	uint8_t *enc;
	size_t enc_len;
	int rc, accepted = 0;

	s.state = (uint32_t)fz_take(&in, 1) % (SESS_NSTATES + 2);
	s.region_shift = (uint32_t)fz_take(&in, 1) % 40;
	s.flags = (uint32_t)fz_take(&in, 4);
	s.id = fz_num(&in);
	s.created = fz_num(&in);
	npairs = (unsigned)fz_take(&in, 1) % (SESS_MAX_PAIRS + 1);
	for (unsigned i = 0; i < npairs; i++) {
		char *src = take_path(&in), *tgt = take_path(&in);
		struct sess_pair *p;

		rc = sess_add_pair(&s, src, tgt);
		if (strlen(src) > SESS_PATH_MAX || strlen(tgt) > SESS_PATH_MAX)
			FUZZ_CHECK(rc == -ENAMETOOLONG, "add_pair of a %zu/%zu-byte path: %d",
				   strlen(src), strlen(tgt), rc);
		else
			FUZZ_CHECK(rc == 0, "add_pair: %d", rc);
		free(src);
		free(tgt);
		if (rc < 0)
			continue;
		p = &s.pairs[s.npairs - 1];
		p->size = fz_num(&in);
		p->target_size = fz_num(&in);
		p->reserve = fz_num(&in);
		take_ident(&in, &p->source_id);
		take_ident(&in, &p->target_id);
		valid = valid && path_ok(p->source) && path_ok(p->target) &&
			ident_ok(&p->source_id) && ident_ok(&p->target_id);
	}
	valid = valid && s.state < SESS_NSTATES && s.region_shift >= 12 && s.region_shift <= 30 &&
		s.npairs >= 1;

	rc = sess_encode(&s, &enc, &enc_len);
	FUZZ_CHECK(rc == 0, "encode: %d", rc);
	accepted = decode_raw(enc, enc_len, 0);
	rc = sess_decode(enc, enc_len, &back);
	FUZZ_CHECK(valid ? rc == 0 : rc == -EBADMSG,
		   "a %s session decodes with %d after encoding", valid ? "valid" : "invalid", rc);
	if (rc == 0) {
		FUZZ_CHECK(back.state == s.state && back.region_shift == s.region_shift &&
				   back.flags == s.flags && back.id == s.id &&
				   back.created == s.created && back.npairs == s.npairs,
			   "the session changed in encode and decode");
		for (uint32_t i = 0; i < s.npairs; i++)
			FUZZ_CHECK(same_pair(&s.pairs[i], &back.pairs[i]),
				   "pair %u changed in encode and decode", i);
		sess_release(&back);
	}
	free(enc);
	sess_release(&s);
	return accepted;
}

static int fuzz_one(const uint8_t *data, size_t len)
{
	if (len < 1)
		return 0;
	if (data[0] & 0x80)
		return structured(data + 1, len - 1);
	return decode_raw(data + 1, len - 1, data[0]);
}
