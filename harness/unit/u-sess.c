/*
 * u-sess: the session record against lib/sess.h: encode/decode round trips,
 * pair limits, and a decoder that refuses every truncation, every single-bit
 * flip and a record of another version, leaving no allocation behind (the
 * test also runs under valgrind's leak checker).
 */
#include "sess.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <xxhash.h>

#include "tap.h"

/* Offset of the version field in an encoded record: it follows the u32 magic. */
#define VERSION_OFF 4

static char scratch[] = "/var/tmp/u-sess.XXXXXX";

/* A session with npairs pairs whose paths are plen bytes long (plen >= 8). */
static int make_sess(struct sess *s, uint32_t npairs, size_t plen)
{
	char *src = malloc(plen + 1), *dst = malloc(plen + 1);
	int rc = -ENOMEM;

	memset(s, 0, sizeof(*s));
	if (src == NULL || dst == NULL)
		goto out;
	s->version = SESS_VERSION;
	s->state = SESS_COPYING;
	s->region_shift = 20;
	s->flags = SESS_DURABILITY_PROCESS;
	s->id = UINT64_C(0x0123456789abcdef);
	s->created = UINT64_C(1700000000);
	for (uint32_t i = 0; i < npairs; i++) {
		struct sess_pair *p;

		memset(src, 'a' + (int)(i % 26), plen);
		memset(dst, 'A' + (int)(i % 26), plen);
		snprintf(src, 8, "/s%05u", i);
		src[7] = '/';
		snprintf(dst, 8, "/t%05u", i);
		dst[7] = '/';
		src[plen] = dst[plen] = '\0';
		rc = sess_add_pair(s, src, dst);
		if (rc < 0)
			goto out;
		p = &s->pairs[i];
		p->size = (UINT64_C(1) << 30) + i;
		p->target_size = (UINT64_C(2) << 30) + i;
		p->reserve = UINT64_C(1) << 20 | i;
		p->source_id = (struct sess_ident){ SESS_KIND_FILE, 0x801 + i, 1000 + i, 0 };
		p->target_id = (struct sess_ident){ SESS_KIND_BLOCK, 0, 0, (UINT64_C(8) << 8) | i };
	}
	rc = 0;
out:
	free(src);
	free(dst);
	return rc;
}

static int ident_same(const struct sess_ident *a, const struct sess_ident *b)
{
	return a->kind == b->kind && a->dev == b->dev && a->ino == b->ino && a->rdev == b->rdev;
}

/* Every field of a and b equal, paths by content. */
static int sess_same(const struct sess *a, const struct sess *b)
{
	if (a->version != b->version || a->state != b->state ||
	    a->region_shift != b->region_shift || a->flags != b->flags || a->id != b->id ||
	    a->created != b->created || a->npairs != b->npairs)
		return 0;
	for (uint32_t i = 0; i < a->npairs; i++) {
		const struct sess_pair *p = &a->pairs[i], *q = &b->pairs[i];

		if (strcmp(p->source, q->source) != 0 || strcmp(p->target, q->target) != 0 ||
		    p->size != q->size || p->target_size != q->target_size ||
		    p->reserve != q->reserve || !ident_same(&p->source_id, &q->source_id) ||
		    !ident_same(&p->target_id, &q->target_id))
			return 0;
	}
	return 1;
}

/* A decode failure must leave nothing allocated: no pairs, npairs 0. */
static int sess_empty(const struct sess *s)
{
	return s->pairs == NULL && s->npairs == 0;
}

static void roundtrip(uint32_t npairs, size_t plen)
{
	struct sess s, d;
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc;

	rc = make_sess(&s, npairs, plen);
	ok(rc == 0 && s.npairs == npairs, "%u pairs with %zu-byte paths built (rc %d)", npairs, plen, rc);
	rc = sess_encode(&s, &buf, &len);
	ok(rc == 0 && buf != NULL && len > 0, "encode %u pairs (rc %d, %zu bytes)", npairs, rc, len);
	if (rc == 0) {
		memset(&d, 0, sizeof(d));
		rc = sess_decode(buf, len, &d);
		ok(rc == 0, "decode %u pairs (rc %d)", npairs, rc);
		ok(rc == 0 && sess_same(&s, &d), "decoded session equals the encoded one (%u pairs)",
		   npairs);
		sess_release(&d);
		ok(sess_empty(&d) && d.version == 0 && d.id == 0, "sess_release zeroes the struct");
	}
	free(buf);
	sess_release(&s);
}

static void test_add_pair_limits(void)
{
	struct sess s;
	char *longp = malloc(SESS_PATH_MAX + 2);
	int rc = 0;
	uint32_t i;

	memset(&s, 0, sizeof(s));
	if (longp == NULL) {
		ok(0, "malloc");
		return;
	}
	memset(longp, 'p', SESS_PATH_MAX + 1);
	longp[0] = '/';
	longp[SESS_PATH_MAX + 1] = '\0'; /* SESS_PATH_MAX + 1 bytes: one too long */
	rc = sess_add_pair(&s, longp, "/t");
	ok(rc == -ENAMETOOLONG && s.npairs == 0, "source of SESS_PATH_MAX + 1 bytes: -ENAMETOOLONG (rc %d)",
	   rc);
	rc = sess_add_pair(&s, "/s", longp);
	ok(rc == -ENAMETOOLONG && s.npairs == 0, "target of SESS_PATH_MAX + 1 bytes: -ENAMETOOLONG (rc %d)",
	   rc);
	longp[SESS_PATH_MAX] = '\0'; /* exactly SESS_PATH_MAX: allowed */
	rc = sess_add_pair(&s, longp, longp);
	ok(rc == 0 && s.npairs == 1 && strlen(s.pairs[0].source) == SESS_PATH_MAX,
	   "paths of exactly SESS_PATH_MAX bytes accepted (rc %d)", rc);
	ok(rc == 0 && s.pairs[0].source != longp && s.pairs[0].target != longp,
	   "sess_add_pair copies the paths");
	for (i = 1, rc = 0; i < SESS_MAX_PAIRS && rc == 0; i++)
		rc = sess_add_pair(&s, "/src", "/dst");
	ok(rc == 0 && s.npairs == SESS_MAX_PAIRS, "SESS_MAX_PAIRS pairs accepted (npairs %u)", s.npairs);
	rc = sess_add_pair(&s, "/src", "/dst");
	ok(rc == -E2BIG && s.npairs == SESS_MAX_PAIRS, "pair %d: -E2BIG (rc %d)", SESS_MAX_PAIRS + 1, rc);
	free(longp);
	sess_release(&s);
	ok(sess_empty(&s), "release after the limits");
}

/* Re-seal a record after patching: XXH3-64 of all bytes but the last 8,
 * stored little-endian in the last 8. */
static void reseal(uint8_t *buf, size_t len)
{
	uint64_t h = XXH3_64bits(buf, len - 8);

	for (int i = 0; i < 8; i++)
		buf[len - 8 + i] = (uint8_t)(h >> (8 * i));
}

/* The last 8 bytes are the XXH3-64 of the others. */
static int sealed(const uint8_t *buf, size_t len)
{
	uint64_t h = XXH3_64bits(buf, len - 8), stored = 0;

	for (int i = 0; i < 8; i++)
		stored |= (uint64_t)buf[len - 8 + i] << (8 * i);
	return h == stored;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Decode refusals: each check runs over every case and reports the first
 * that was accepted or answered with the wrong code. */
static void test_refusals(void)
{
	struct sess s, d;
	uint8_t *buf = NULL, *copy = NULL;
	size_t len = 0, bad_at = 0, wrong_at = 0;
	int rc, nbad = 0, nwrong = 0, leak = 0, badrc = 0;

	if (make_sess(&s, 3, 40) < 0 || sess_encode(&s, &buf, &len) < 0) {
		ok(0, "build a record for the refusal checks");
		sess_release(&s);
		return;
	}
	sess_release(&s);

	/* every truncation, each in a buffer of exactly that size so that
	 * valgrind sees any read past it */
	for (size_t n = 0; n < len; n++) {
		copy = malloc(n ? n : 1);
		if (copy == NULL)
			break;
		memcpy(copy, buf, n);
		memset(&d, 0, sizeof(d));
		rc = sess_decode(copy, n, &d);
		if (rc != -EBADMSG && nbad++ == 0) {
			bad_at = n;
			badrc = rc;
		}
		leak += !sess_empty(&d);
		if (rc == 0)
			sess_release(&d);
		free(copy);
	}
	ok(nbad == 0, "every truncation (0..%zu bytes) refused with -EBADMSG (%d not; first at %zu: rc %d)",
	   len - 1, nbad, bad_at, badrc);
	ok(leak == 0, "no truncation leaves pairs in the struct (%d did)", leak);

	/* one more byte is a different length */
	copy = malloc(len + 1);
	if (copy != NULL) {
		memcpy(copy, buf, len);
		copy[len] = 0;
		memset(&d, 0, sizeof(d));
		rc = sess_decode(copy, len + 1, &d);
		ok(rc == -EBADMSG && sess_empty(&d), "a trailing byte: -EBADMSG (rc %d)", rc);
		if (rc == 0)
			sess_release(&d);
		free(copy);
	}

	/* every single-bit flip: refused, and as malformed (-EBADMSG), since a
	 * flipped record no longer matches its checksum; -EPROTONOSUPPORT is
	 * only for an intact record, so it is allowed only if the checksum
	 * happened to match */
	copy = malloc(len);
	nbad = leak = 0;
	for (size_t bit = 0; copy != NULL && bit < len * 8; bit++) {
		memcpy(copy, buf, len);
		copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		memset(&d, 0, sizeof(d));
		rc = sess_decode(copy, len, &d);
		if (rc >= 0 && nbad++ == 0)
			bad_at = bit;
		if (rc < 0 && rc != -EBADMSG && !(rc == -EPROTONOSUPPORT && sealed(copy, len)) &&
		    nwrong++ == 0) {
			wrong_at = bit;
			badrc = rc;
		}
		leak += !sess_empty(&d);
		if (rc == 0)
			sess_release(&d);
	}
	ok(copy != NULL && nbad == 0, "every single-bit flip of %zu bits refused (%d accepted; first bit %zu)",
	   len * 8, nbad, bad_at);
	ok(copy != NULL && nwrong == 0,
	   "every single-bit flip refused with -EBADMSG (%d not; first bit %zu: rc %d)", nwrong, wrong_at,
	   badrc);
	ok(leak == 0, "no flip leaves pairs in the struct (%d did)", leak);
	free(copy);
	free(buf);
}

static void test_other_version(void)
{
	static const uint32_t versions[] = { 0, SESS_VERSION + 1, 0xffffffffu };
	struct sess s, d;
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc;

	if (make_sess(&s, 2, 16) < 0 || sess_encode(&s, &buf, &len) < 0) {
		ok(0, "build a record for the version checks");
		sess_release(&s);
		return;
	}
	sess_release(&s);
	/* sanity: the patch offset is the version field */
	ok(len > VERSION_OFF + 4 && buf[VERSION_OFF] == SESS_VERSION && buf[VERSION_OFF + 1] == 0,
	   "encoded version %d is at byte %d, little-endian", SESS_VERSION, VERSION_OFF);
	for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
		put_le32(buf + VERSION_OFF, versions[i]);
		reseal(buf, len);
		memset(&d, 0, sizeof(d));
		rc = sess_decode(buf, len, &d);
		ok(rc == -EPROTONOSUPPORT, "intact record of version %u: -EPROTONOSUPPORT (rc %d)",
		   versions[i], rc);
		ok(d.version == versions[i] && sess_empty(&d) && d.id == 0 && d.state == 0,
		   "version %u: s.version set, nothing else (version %u, npairs %u)", versions[i],
		   d.version, d.npairs);
		if (rc == 0)
			sess_release(&d);
	}
	/* the same patch back to the current version decodes again: the
	 * reseal is right, so the refusals above were about the version */
	put_le32(buf + VERSION_OFF, SESS_VERSION);
	reseal(buf, len);
	memset(&d, 0, sizeof(d));
	rc = sess_decode(buf, len, &d);
	ok(rc == 0 && d.npairs == 2, "resealed record of version %d decodes (rc %d)", SESS_VERSION, rc);
	sess_release(&d);
	free(buf);
}

/* Intact (resealed) records whose content is out of range: -EBADMSG. */
static void test_bad_content(void)
{
	struct sess s, d;
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc;
	static const struct {
		size_t off;
		uint32_t v;
		const char *what;
	} cases[] = {
		{ 12, SESS_NSTATES, "state SESS_NSTATES" },
		{ 16, 11, "region shift 11" },
		{ 16, 31, "region shift 31" },
		{ 40, 0, "0 pairs" },
		{ 40, SESS_MAX_PAIRS + 1, "SESS_MAX_PAIRS + 1 pairs" },
		{ 40, 3, "3 pairs announced, 2 present" },
		{ 40, 1, "1 pair announced, 2 present" },
		{ 0, 0x52534d57u, "another magic" },
	};

	if (make_sess(&s, 2, 8) < 0 || sess_encode(&s, &buf, &len) < 0) {
		ok(0, "build a record for the content checks");
		sess_release(&s);
		return;
	}
	sess_release(&s);
	/* the offsets come from the layout in lib/sess.c; check them first */
	ok(len > 44 && buf[12] == SESS_COPYING && buf[16] == 20 && buf[40] == 2 && buf[41] == 0,
	   "state, region shift and pair count are at bytes 12, 16 and 40");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t *copy = malloc(len);

		if (copy == NULL)
			break;
		memcpy(copy, buf, len);
		put_le32(copy + cases[i].off, cases[i].v);
		reseal(copy, len);
		memset(&d, 0, sizeof(d));
		rc = sess_decode(copy, len, &d);
		ok(rc == -EBADMSG && sess_empty(&d), "resealed record with %s: -EBADMSG (rc %d)",
		   cases[i].what, rc);
		if (rc == 0)
			sess_release(&d);
		free(copy);
	}
	/* a NUL inside the second pair's target path, found by content: the
	 * decoder has allocated the first pair by then and must free it */
	{
		uint8_t *copy = malloc(len), *p;

		if (copy != NULL) {
			memcpy(copy, buf, len);
			p = memmem(copy, len, "/t00001/", 8);
			ok(p != NULL, "second target path found in the record");
			if (p != NULL) {
				p[3] = '\0';
				reseal(copy, len);
				memset(&d, 0, sizeof(d));
				rc = sess_decode(copy, len, &d);
				ok(rc == -EBADMSG && sess_empty(&d),
				   "resealed record with a NUL in a path: -EBADMSG (rc %d)", rc);
				if (rc == 0)
					sess_release(&d);
			}
			free(copy);
		}
	}
	free(buf);
}

static void test_state_names(void)
{
	static const char *const want[] = { "setup", "copying", "synced", "switched",
					    "committed", "aborted" };

	for (uint32_t i = 0; i < SESS_NSTATES; i++)
		ok(strcmp(sess_state_name(i), want[i]) == 0, "sess_state_name(%u) = %s (got %s)", i,
		   want[i], sess_state_name(i));
	ok(strcmp(sess_state_name(SESS_NSTATES), "unknown") == 0, "sess_state_name(NSTATES) = unknown");
	ok(strcmp(sess_state_name(UINT32_MAX), "unknown") == 0, "sess_state_name(UINT32_MAX) = unknown");
}

static void test_ident(void)
{
	char a[64], b[64];
	struct stat sa, sb, sd, blk;
	struct sess_ident ia, ia2, ib, id, ibl, ibl2;
	int fa, fb, rc;

	if (mkdtemp(scratch) == NULL) {
		ok(0, "mkdtemp %s", scratch);
		return;
	}
	snprintf(a, sizeof(a), "%s/a", scratch);
	snprintf(b, sizeof(b), "%s/b", scratch);
	fa = open(a, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	fb = open(b, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	if (fa < 0 || fb < 0 || stat(a, &sa) < 0 || stat(b, &sb) < 0 || stat(scratch, &sd) < 0) {
		ok(0, "make two files in %s", scratch);
		goto out;
	}
	rc = sess_ident_from_stat(&sa, &ia);
	ok(rc == 0 && ia.kind == SESS_KIND_FILE && ia.dev == (uint64_t)sa.st_dev &&
		   ia.ino == (uint64_t)sa.st_ino,
	   "regular file: kind file, its dev and inode (rc %d)", rc);
	rc = sess_ident_from_stat(&sa, &ia2);
	ok(rc == 0 && sess_ident_equal(&ia, &ia2), "same file: identities equal");
	rc = sess_ident_from_stat(&sb, &ib);
	ok(rc == 0 && !sess_ident_equal(&ia, &ib) && !sess_ident_equal(&ib, &ia),
	   "different files: identities differ");
	{
		struct stat other = sa;
		struct sess_ident io;

		other.st_dev = sa.st_dev + 1; /* same inode number, another device */
		rc = sess_ident_from_stat(&other, &io);
		ok(rc == 0 && !sess_ident_equal(&ia, &io), "same inode on another device: identities differ");
	}
	rc = sess_ident_from_stat(&sd, &id);
	ok(rc == -EINVAL, "directory: -EINVAL (rc %d)", rc);

	/* a block device, described by a stat result */
	memset(&blk, 0, sizeof(blk));
	blk.st_mode = S_IFBLK | 0660;
	blk.st_rdev = makedev(7, 3);
	blk.st_dev = sa.st_dev;
	blk.st_ino = sa.st_ino;
	rc = sess_ident_from_stat(&blk, &ibl);
	ok(rc == 0 && ibl.kind == SESS_KIND_BLOCK && ibl.rdev == (uint64_t)makedev(7, 3),
	   "block device: kind block, its rdev (rc %d)", rc);
	ok(!sess_ident_equal(&ibl, &ia), "block device and file with the same dev/ino differ");
	blk.st_dev = 1;
	blk.st_ino = 2;
	rc = sess_ident_from_stat(&blk, &ibl2);
	ok(rc == 0 && sess_ident_equal(&ibl, &ibl2), "same rdev: same block device");
	blk.st_rdev = makedev(7, 4);
	rc = sess_ident_from_stat(&blk, &ibl2);
	ok(rc == 0 && !sess_ident_equal(&ibl, &ibl2), "other rdev: other block device");
	blk.st_mode = S_IFCHR | 0666;
	ok(sess_ident_from_stat(&blk, &ibl2) == -EINVAL, "character device: -EINVAL");
out:
	if (fa >= 0)
		close(fa);
	if (fb >= 0)
		close(fb);
	unlink(a);
	unlink(b);
	rmdir(scratch);
}

int main(void)
{
	test_state_names();
	roundtrip(1, 8);
	roundtrip(1, SESS_PATH_MAX);
	roundtrip(SESS_MAX_PAIRS, 200);
	test_add_pair_limits();
	test_refusals();
	test_other_version();
	test_bad_content();
	test_ident();
	return tap_done();
}
