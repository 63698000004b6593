/*
 * u-ctl: the control block against lib/ctl.h: create/publish/attach,
 * validation of hostile bytes, the region protocol (I4, I7) one step at a
 * time and under a multi-threaded stress, the attached-process table and
 * ctl_path.
 *
 * Blocks live in a scratch directory under /var/tmp (ctl_create takes any
 * path).  The stress test's writer and copier threads keep their own
 * per-region counters and a global sequence so that the copier can tell
 * whether a write was in flight during a copy that ctl_copy_end called
 * clean; nothing depends on timing to pass.  The random choices are seeded
 * from $VOLMIG_TEST_SEED (or the clock) and the seed is printed.
 */
#include "ctl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "scratch.h"
#include "tap.h"

#define SHIFT 12
#define REGION (UINT64_C(1) << SHIFT)
#define P0_SIZE (10 * REGION + 1) /* 11 regions, the last one partial */
#define P1_SIZE (5 * REGION)      /* 5 regions */
#define NREG 16                   /* both pairs */
#define LONG_WAIT_US (UINT64_C(600) * 1000000) /* "forever" for a unit test */

static char scratch[] = "/var/tmp/u-ctl.XXXXXX";
static uint64_t seed;

static uint64_t splitmix(uint64_t *state)
{
	uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

/* FNV-1a 64, as ctl.h documents for the checksum of the immutable part. */
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

static void reseal(struct ctl_hdr *h)
{
	h->checksum = fnv1a(h, offsetof(struct ctl_hdr, checksum));
}

static void scratch_path(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", scratch, name);
}

static void params_init(struct ctl_params *p, uint64_t session_id)
{
	static const char *const src[2] = { "/dev/vg0/source-volume", "/srv/data/disk.img" };
	static const char *const dst[2] = { "/dev/vg1/target-volume", "/mnt/new/disk.img" };

	memset(p, 0, sizeof(*p));
	p->session_id = session_id;
	p->region_shift = SHIFT;
	p->npairs = 2;
	p->sizes[0] = P0_SIZE;
	p->sizes[1] = P1_SIZE;
	for (int i = 0; i < 2; i++) {
		p->sources[i] = src[i];
		p->targets[i] = dst[i];
		p->source_ids[i] = (struct ctl_ident){ .kind = 2, .rdev = 0xfd00u + (unsigned)i };
		p->target_ids[i] = (struct ctl_ident){ .kind = 1, .dev = 0x803, .ino = 77u + (unsigned)i };
	}
}

/* A new block in the scratch directory under name, of params_init(id);
 * a failure is one failed check naming what it was for.  0 or -1. */
static int new_block(struct ctl *c, struct ctl_params *p, char *path, size_t len, const char *name,
		     uint64_t id, const char *what)
{
	scratch_path(path, len, name);
	params_init(p, id);
	if (ctl_create(c, path, p) < 0) {
		ok(0, "ctl_create for %s", what);
		return -1;
	}
	return 0;
}

/* The string table holds want at (off, len). */
static int strtab_is(const struct ctl *c, uint32_t off, uint32_t len, const char *want)
{
	const char *tab = (const char *)c->hdr + c->hdr->strtab_off;

	return len == strlen(want) && (uint64_t)off + len <= c->hdr->strtab_len &&
	       memcmp(tab + off, want, len) == 0;
}

/* Every field ctl_params set, read back through c. */
static int fields_match(const struct ctl *c, const struct ctl_params *p)
{
	const struct ctl_hdr *h = c->hdr;

	if (h->magic != CTL_MAGIC || h->version != CTL_VERSION || h->hdr_size != sizeof(*h) ||
	    h->map_size != c->map_size || h->session_id != p->session_id ||
	    h->region_shift != p->region_shift || h->npairs != p->npairs || h->nregions != NREG)
		return 0;
	if (h->pairs[0].nregions != 11 || h->pairs[0].first_region != 0 ||
	    h->pairs[1].nregions != 5 || h->pairs[1].first_region != 11)
		return 0;
	for (uint32_t i = 0; i < p->npairs; i++) {
		const struct ctl_pair *cp = &h->pairs[i];

		if (cp->size != p->sizes[i] || memcmp(&cp->source_id, &p->source_ids[i], sizeof(cp->source_id)) ||
		    memcmp(&cp->target_id, &p->target_ids[i], sizeof(cp->target_id)) ||
		    !strtab_is(c, cp->source_off, cp->source_len, p->sources[i]) ||
		    !strtab_is(c, cp->target_off, cp->target_len, p->targets[i]))
			return 0;
	}
	return 1;
}

static uint32_t word(const struct ctl *c, uint32_t pair, uint64_t r)
{
	return atomic_load_explicit(ctl_region(c, pair, r), memory_order_acquire);
}

/* ctl_validate of a private copy of exactly len bytes (valgrind sees any
 * read past it). */
static int validate_copy(const void *src, size_t srclen, size_t len)
{
	unsigned char *b = calloc(1, len ? len : 1);
	int rc;

	if (b == NULL)
		return -ENOMEM;
	memcpy(b, src, len < srclen ? len : srclen);
	rc = ctl_validate(b, len);
	free(b);
	return rc;
}

static void test_create_attach(void)
{
	struct ctl_params p;
	struct ctl c, c2, c3;
	char path[128];
	struct stat st;
	uint32_t epoch;
	int rc;
	bool zero = true;

	scratch_path(path, sizeof(path), "block");
	params_init(&p, UINT64_C(0xfeedf00d12345678));
	rc = ctl_create(&c, path, &p);
	ok(rc == 0 && c.hdr != NULL, "ctl_create in %s (rc %d)", scratch, rc);
	if (rc < 0)
		return;
	ok(fields_match(&c, &p), "created block holds the parameters");
	ok(stat(path, &st) == 0 && (size_t)st.st_size == c.map_size, "file size is map_size (%zu)",
	   c.map_size);
	ok(atomic_load(&c.hdr->ready) == 0, "a created block is not ready");
	for (uint64_t r = 0; r < NREG; r++)
		zero = zero && atomic_load(&c.regions[r]) == 0;
	ok(zero, "every region word of a created block is zero");
	ok(ctl_validate(c.hdr, c.map_size) == 0, "ctl_validate accepts the created block in place");

	rc = ctl_attach(&c2, path);
	ok(rc == -EAGAIN && c2.hdr == NULL, "ctl_attach before publish: -EAGAIN (rc %d)", rc);

	ctl_mark_dirty(&c, 0, 3);
	ctl_mark_dirty(&c, 1, 4);
	epoch = atomic_load(&c.hdr->epoch);
	ctl_publish(&c, 1);
	ok(atomic_load(&c.hdr->ready) == 1 && atomic_load(&c.hdr->state) == 1 &&
		   atomic_load(&c.hdr->epoch) == epoch + 1,
	   "ctl_publish sets ready and state and bumps the epoch");

	rc = ctl_attach(&c2, path);
	ok(rc == 0 && c2.hdr != NULL, "ctl_attach after publish (rc %d)", rc);
	if (rc == 0) {
		ok(c2.map_size == c.map_size && fields_match(&c2, &p), "attached block holds the parameters");
		ok(atomic_load(&c2.hdr->state) == 1 && atomic_load(&c2.hdr->ready) == 1,
		   "attached block: state and ready as published");
		ok(ctl_dirty_count(&c2, 0) == 1 && ctl_dirty_count(&c2, 1) == 1 &&
			   (word(&c2, 0, 3) & CTL_DIRTY) && (word(&c2, 1, 4) & CTL_DIRTY),
		   "dirty bits set before publish are seen through the attachment");
		ctl_mark_dirty(&c2, 0, 7);
		ok(ctl_dirty_count(&c, 0) == 2, "a mark through one mapping is seen through the other");

		/* a new block replaces the old one by rename: the old mapping
		 * keeps its block, a new attach finds the new one */
		params_init(&p, 42);
		rc = ctl_create(&c3, path, &p);
		ok(rc == 0 && c2.hdr->session_id == UINT64_C(0xfeedf00d12345678),
		   "re-create leaves an attached mapping on the old block (rc %d)", rc);
		if (rc == 0) {
			ctl_publish(&c3, 0);
			ctl_detach(&c3);
		}
		ctl_detach(&c2);
		rc = ctl_attach(&c2, path);
		ok(rc == 0 && c2.hdr->session_id == 42 && ctl_dirty_count(&c2, 0) == 0,
		   "attach after re-create finds the new block (rc %d)", rc);
		ctl_detach(&c2);
	}
	ctl_detach(&c2);
	ok(c2.hdr == NULL && c2.regions == NULL && c2.map_size == 0, "ctl_detach is idempotent");
	ctl_detach(&c);

	scratch_path(path, sizeof(path), "missing");
	rc = ctl_attach(&c2, path);
	ok(rc == -ENOENT, "ctl_attach of a missing file: -ENOENT (rc %d)", rc);
	scratch_path(path, sizeof(path), "no-such-dir/block");
	params_init(&p, 1);
	rc = ctl_create(&c2, path, &p);
	ok(rc == -ENOENT, "ctl_create in a missing directory: -ENOENT (rc %d)", rc);
	scratch_path(path, sizeof(path), "nopairs");
	p.npairs = 0;
	rc = ctl_create(&c2, path, &p);
	ok(rc < 0 && access(path, F_OK) != 0, "ctl_create with no pair fails, makes no file (rc %d)", rc);
}

/* Patch one field of a copy, reseal the checksum, and expect -EBADMSG. */
#define PATCH(what, stmt)                                                                \
	do {                                                                             \
		memcpy(b, orig, len);                                                    \
		{                                                                        \
			struct ctl_hdr *h = (struct ctl_hdr *)b;                         \
			stmt;                                                            \
			reseal(h);                                                       \
		}                                                                        \
		rc = ctl_validate(b, len);                                               \
		ok(rc == -EBADMSG, "validate refuses %s (checksum resealed) (rc %d)", what, rc); \
	} while (0)

/* A block setup built (pristine): a reset keeps every region DIRTY until
 * ctl_unpristine, then clears them as for any block. */
static void test_pristine(void)
{
	struct ctl_params p;
	struct ctl c, c2;
	char path[128];
	bool all = true, none = true;
	int rc;

	scratch_path(path, sizeof(path), "pristine");
	params_init(&p, 7);
	p.pristine = true;
	rc = ctl_create(&c, path, &p);
	ok(rc == 0 && atomic_load(&c.hdr->pristine) == 1, "ctl_create with pristine marks it (rc %d)",
	   rc);
	if (rc < 0)
		return;
	ctl_publish(&c, 0);
	atomic_store(&c.regions[3], CTL_CIP | 2u); /* a dead copier's and writers' marks */
	ctl_reset(&c);
	for (uint64_t r = 0; r < NREG; r++)
		all = all && atomic_load(&c.regions[r]) == CTL_DIRTY;
	ok(all, "ctl_reset of a pristine block: every region DIRTY, nothing else");
	rc = ctl_unpristine(&c);
	ok(rc == 0 && atomic_load(&c.hdr->pristine) == 0, "ctl_unpristine clears the mark (rc %d)", rc);
	ok(ctl_attach(&c2, path) == 0 && atomic_load(&c2.hdr->pristine) == 0,
	   "a new mapping sees it cleared");
	ctl_detach(&c2);
	ok(ctl_unpristine(&c) == 0, "ctl_unpristine of a block that is not pristine: 0");
	ctl_reset(&c);
	for (uint64_t r = 0; r < NREG; r++)
		none = none && atomic_load(&c.regions[r]) == 0;
	ok(none, "ctl_reset after that clears every region");
	ctl_detach(&c);
	params_init(&p, 8);
	rc = ctl_create(&c, path, &p);
	ok(rc == 0 && atomic_load(&c.hdr->pristine) == 0, "a block created without it is not pristine");
	if (rc == 0)
		ctl_detach(&c);
}

/*
 * dirty_tail: the last regions of each pair start DIRTY, the rest clean,
 * across the write chunks (pair 0 needs three), clamped to the pair's size
 * (pair 1), and none when 0 (pair 2); the mapping and a new attachment
 * both see them.
 */
static void test_dirty_tail(void)
{
	const uint64_t n0 = 40000, tail0 = 39000, n1 = 5;
	struct ctl_params p;
	struct ctl c, c2;
	char path[128];
	uint64_t bad = 0, r;
	int rc;

	scratch_path(path, sizeof(path), "tail");
	params_init(&p, 9);
	p.npairs = 3;
	p.sizes[0] = n0 << SHIFT;
	p.sizes[1] = n1 << SHIFT;
	p.sizes[2] = 3 << SHIFT;
	p.sources[2] = p.sources[1];
	p.targets[2] = p.targets[1];
	p.dirty_tail[0] = tail0;
	p.dirty_tail[1] = 1000; /* more than the pair has */
	rc = ctl_create(&c, path, &p);
	ok(rc == 0, "ctl_create with dirty tails (rc %d)", rc);
	if (rc < 0)
		return;
	for (r = 0; r < n0; r++)
		bad += word(&c, 0, r) != (r < n0 - tail0 ? 0 : CTL_DIRTY);
	ok(bad == 0 && ctl_dirty_count(&c, 0) == tail0,
	   "pair 0: regions %llu to %llu DIRTY, the %llu before clean (%llu wrong words)",
	   (unsigned long long)(n0 - tail0), (unsigned long long)(n0 - 1),
	   (unsigned long long)(n0 - tail0), (unsigned long long)bad);
	ok(ctl_dirty_count(&c, 1) == n1 && word(&c, 1, 0) == CTL_DIRTY,
	   "pair 1: a tail longer than the pair makes all of it DIRTY (%llu)",
	   (unsigned long long)ctl_dirty_count(&c, 1));
	ok(ctl_dirty_count(&c, 2) == 0, "pair 2: no tail, nothing DIRTY");
	ok(ctl_validate(c.hdr, c.map_size) == 0, "  the block validates");
	ctl_publish(&c, 1);
	rc = ctl_attach(&c2, path);
	ok(rc == 0 && ctl_dirty_count(&c2, 0) == tail0 && ctl_dirty_count(&c2, 1) == n1 &&
		   ctl_dirty_count(&c2, 2) == 0,
	   "  a new attachment sees the same (rc %d)", rc);
	if (rc == 0)
		ctl_detach(&c2);
	ctl_detach(&c);
}

static void test_validate(void)
{
	struct ctl_params p;
	struct ctl c;
	char path[128];
	unsigned char *orig = NULL, *b = NULL;
	size_t len, span = offsetof(struct ctl_hdr, checksum);
	size_t truncs[] = { 0, 1, 8, 64, sizeof(struct ctl_hdr) - 1, sizeof(struct ctl_hdr), 0, 0, 0 };
	int rc, nbad = 0;
	size_t first_bad = 0;

	if (new_block(&c, &p, path, sizeof(path), "validate", 7, "the validation checks") < 0)
		return;
	ctl_mark_dirty(&c, 0, 1);
	ctl_publish(&c, 1);
	len = c.map_size;
	orig = malloc(len);
	b = malloc(len);
	if (orig == NULL || b == NULL) {
		ok(0, "buffers");
		goto out;
	}
	memcpy(orig, c.hdr, len);
	ok(validate_copy(orig, len, len) == 0, "validate accepts a copy of the published block");

	/* truncations, each in a buffer of exactly that size */
	truncs[6] = len - 1;
	truncs[7] = len - 4096;
	truncs[8] = len / 2;
	for (size_t i = 0; i < sizeof(truncs) / sizeof(truncs[0]); i++) {
		rc = validate_copy(orig, len, truncs[i]);
		ok(rc == -EBADMSG, "validate refuses the block truncated to %zu bytes (rc %d)", truncs[i], rc);
	}
	rc = validate_copy(orig, len, len + 4096);
	ok(rc == -EBADMSG, "validate refuses the block with a page appended (rc %d)", rc);

	/* a patch that changes nothing, resealed, is still accepted: the
	 * refusals below are about the field, not the reseal */
	memcpy(b, orig, len);
	reseal((struct ctl_hdr *)b);
	ok(ctl_validate(b, len) == 0, "validate accepts an unchanged block resealed by the test");
	PATCH("a wrong magic", h->magic ^= 1);
	PATCH("another version", h->version = CTL_VERSION + 1);
	PATCH("another header size", h->hdr_size -= 8);
	PATCH("map_size + 4096", h->map_size += 4096);
	PATCH("map_size - 4096", h->map_size -= 4096);
	PATCH("0 pairs", h->npairs = 0);
	PATCH("CTL_MAX_PAIRS + 1 pairs", h->npairs = CTL_MAX_PAIRS + 1);
	PATCH("1 pair of 2 (regions miscounted)", h->npairs = 1);
	PATCH("region shift 11", h->region_shift = 11);
	PATCH("region shift 31", h->region_shift = 31);
	PATCH("a string table past the end", h->strtab_off = len + 1);
	PATCH("a string table longer than the file", h->strtab_len = len);
	PATCH("a string table inside the header", h->strtab_off = sizeof(struct ctl_hdr) - 8);
	PATCH("regions not page-aligned", h->regions_off += 8);
	PATCH("regions past the end", h->regions_off = len + 4096);
	PATCH("one region too many", h->nregions += 1);
	PATCH("one region too few", h->nregions -= 1);
	PATCH("more regions than the file holds", h->nregions = len);
	PATCH("a pair with the wrong region count", h->pairs[0].nregions += 1);
	PATCH("a pair size that needs another region", h->pairs[1].size += 1);
	PATCH("a pair at the wrong first region", h->pairs[1].first_region += 1);
	PATCH("a source path past the string table", h->pairs[0].source_off = (uint32_t)h->strtab_len);
	PATCH("a target path longer than the string table",
	      h->pairs[1].target_len = (uint32_t)h->strtab_len + 1);
	PATCH("a path with offset + length overflowing 32 bits",
	      (h->pairs[0].source_off = 0xffffffffu, h->pairs[0].source_len = 2));

	/* any flipped byte in the immutable part or its checksum, not resealed */
	for (size_t i = 0; i < span + 8; i++) {
		memcpy(b, orig, len);
		b[i] ^= (unsigned char)(1u << (i % 8));
		if (ctl_validate(b, len) != -EBADMSG && nbad++ == 0)
			first_bad = i;
	}
	ok(nbad == 0, "validate refuses each of %zu single-bit flips of the immutable part (%d accepted, first at byte %zu)",
	   span + 8, nbad, first_bad);

	/* the mutable part is not covered */
	memcpy(b, orig, len);
	{
		struct ctl_hdr *h = (struct ctl_hdr *)b;

		atomic_store(&h->state, 4);
		atomic_fetch_add(&h->epoch, 9);
		atomic_store(&h->procs[3].pid, 12345);
		atomic_store(&h->copier_pid, 99);
	}
	b[((struct ctl_hdr *)b)->regions_off] ^= 0xff; /* a region word */
	ok(ctl_validate(b, len) == 0, "validate accepts changes to state, epoch, procs and region words");
out:
	free(orig);
	free(b);
	ctl_detach(&c);
}

#undef PATCH

static void test_attach_corrupt(void)
{
	struct ctl_params p;
	struct ctl c;
	char path[128];
	uint64_t magic = 0;
	size_t map_size;
	int fd, rc;

	if (new_block(&c, &p, path, sizeof(path), "corrupt", 9, "the corruption checks") < 0)
		return;
	ctl_publish(&c, 1);
	map_size = c.map_size;
	ctl_detach(&c);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		ok(0, "open %s", path);
		return;
	}
	/* one byte of the session id */
	if (pwrite(fd, "\x5a", 1, offsetof(struct ctl_hdr, session_id)) != 1)
		ok(0, "corrupt the file");
	rc = ctl_attach(&c, path);
	ok(rc == -EBADMSG && c.hdr == NULL, "ctl_attach of a block with a changed byte: -EBADMSG (rc %d)", rc);
	ctl_detach(&c);
	/* foreign content */
	if (pwrite(fd, &magic, sizeof(magic), 0) != sizeof(magic))
		ok(0, "overwrite the magic");
	rc = ctl_attach(&c, path);
	ok(rc == -EBADMSG, "ctl_attach of a block without magic: -EBADMSG (rc %d)", rc);
	ctl_detach(&c);
	/* truncated files */
	if (ftruncate(fd, (off_t)map_size - 4096) == 0) {
		rc = ctl_attach(&c, path);
		ok(rc == -EBADMSG, "ctl_attach of a truncated block: -EBADMSG (rc %d)", rc);
		ctl_detach(&c);
	}
	if (ftruncate(fd, 100) == 0) {
		rc = ctl_attach(&c, path);
		ok(rc == -EBADMSG, "ctl_attach of a 100-byte file: -EBADMSG (rc %d)", rc);
		ctl_detach(&c);
	}
	if (ftruncate(fd, 0) == 0) {
		rc = ctl_attach(&c, path);
		ok(rc == -EBADMSG, "ctl_attach of an empty file: -EBADMSG (rc %d)", rc);
		ctl_detach(&c);
	}
	close(fd);
}

/* A thread that ends one write once the copier has set CIP on the region. */
struct ender {
	struct ctl *c;
	uint32_t pair;
	uint64_t r;
};

static void *end_write_when_cip(void *arg)
{
	struct ender *e = arg;

	while (!(word(e->c, e->pair, e->r) & CTL_CIP))
		sched_yield();
	ctl_write_end(e->c, e->pair, e->r);
	return NULL;
}

/* A writer that records what the region word was when it was let in. */
struct waiter {
	struct ctl *c;
	uint32_t pair;
	uint64_t r;
	_Atomic int done;
	int rc;
	uint32_t seen;
};

static void *write_with_long_wait(void *arg)
{
	struct waiter *w = arg;

	w->rc = ctl_write_begin(w->c, w->pair, w->r, LONG_WAIT_US);
	w->seen = word(w->c, w->pair, w->r);
	atomic_store(&w->done, 1);
	return NULL;
}

static void test_protocol(void)
{
	struct ctl_params p;
	struct ctl c;
	char path[128];
	pthread_t th;
	int rc;

	if (new_block(&c, &p, path, sizeof(path), "protocol", 11, "the protocol checks") < 0)
		return;
	ctl_publish(&c, 1);

	/* write_begin tells a clean region from a dirty one */
	rc = ctl_write_begin(&c, 0, 0, 0);
	ok(rc == 1, "write_begin on a clean region: 1 (rc %d)", rc);
	ok((word(&c, 0, 0) & CTL_INFLIGHT) == 1, "  the write is counted in flight");
	ctl_mark_dirty(&c, 0, 0);
	ctl_write_end(&c, 0, 0);
	ok(word(&c, 0, 0) == CTL_DIRTY, "after mark_dirty and write_end: DIRTY only (word %#x)",
	   word(&c, 0, 0));
	rc = ctl_write_begin(&c, 0, 0, 0);
	ok(rc == 0, "write_begin after mark_dirty: 0 (rc %d)", rc);
	rc = ctl_write_begin(&c, 0, 0, 0);
	ok(rc == 0 && (word(&c, 0, 0) & CTL_INFLIGHT) == 2, "a second write in flight counts 2");
	ctl_write_end(&c, 0, 0);
	ctl_write_end(&c, 0, 0);
	ok(ctl_dirty_count(&c, 0) == 1 && ctl_dirty_count(&c, 1) == 0, "dirty count: pair 0 1, pair 1 0");
	ok((word(&c, 0, 1) & CTL_DIRTY) == 0 && (word(&c, 1, 0) & CTL_DIRTY) == 0,
	   "neighbouring regions and pairs untouched");

	/* a copy with nothing in flight */
	rc = ctl_copy_begin(&c, 0, 0, 0);
	ok(rc == 0 && word(&c, 0, 0) == CTL_CIP, "copy_begin on an idle dirty region: 0, CIP, DIRTY clear (rc %d, word %#x)",
	   rc, word(&c, 0, 0));
	rc = ctl_copy_end(&c, 0, 0);
	ok(rc == 1 && word(&c, 0, 0) == 0, "copy_end with no write: 1, region clean (rc %d, word %#x)", rc,
	   word(&c, 0, 0));
	rc = ctl_copy_begin(&c, 0, 9, 0);
	ok(rc == 0, "copy_begin on a clean region: 0 (rc %d)", rc);
	rc = ctl_copy_end(&c, 0, 9);
	ok(rc == 1 && word(&c, 0, 9) == 0, "copy_end: 1, region clean (rc %d)", rc);

	/* a write in flight that does not drain: -EBUSY, DIRTY as it was */
	rc = ctl_write_begin(&c, 0, 1, 0);
	ok(rc == 1, "write_begin on clean region 1: 1");
	ctl_mark_dirty(&c, 0, 1);
	rc = ctl_copy_begin(&c, 0, 1, 20000);
	ok(rc == -EBUSY, "copy_begin with a write in flight (dirty): -EBUSY after its wait (rc %d)", rc);
	ok(word(&c, 0, 1) == (CTL_DIRTY | 1), "  DIRTY kept, CIP withdrawn, write still counted (word %#x)",
	   word(&c, 0, 1));
	rc = ctl_write_begin(&c, 0, 2, 0); /* clean, intent not yet marked */
	ok(rc == 1, "write_begin on clean region 2: 1");
	rc = ctl_copy_begin(&c, 0, 2, 20000);
	ok(rc == -EBUSY && word(&c, 0, 2) == 1,
	   "copy_begin with a write in flight (clean): -EBUSY, DIRTY still clear (rc %d, word %#x)", rc,
	   word(&c, 0, 2));
	ctl_mark_dirty(&c, 0, 2);
	ctl_write_end(&c, 0, 2);
	ok(word(&c, 0, 2) == CTL_DIRTY, "  the late mark is kept (word %#x)", word(&c, 0, 2));
	rc = ctl_write_begin(&c, 0, 1, 0);
	ok(rc == 0, "write_begin after a failed copy: still dirty, 0 (rc %d)", rc);
	ctl_write_end(&c, 0, 1);
	ctl_write_end(&c, 0, 1);
	rc = ctl_copy_begin(&c, 0, 1, 0);
	ok(rc == 0, "copy_begin once drained: 0 (rc %d)", rc);
	ok(ctl_copy_end(&c, 0, 1) == 1 && word(&c, 0, 1) == 0, "copy_end: 1, clean");

	/* a write in flight that drains while copy_begin waits */
	ok(ctl_write_begin(&c, 0, 3, 0) == 1, "write_begin on clean region 3: 1");
	ctl_mark_dirty(&c, 0, 3);
	{
		struct ender e = { &c, 0, 3 };

		if (pthread_create(&th, NULL, end_write_when_cip, &e) == 0) {
			rc = ctl_copy_begin(&c, 0, 3, LONG_WAIT_US);
			pthread_join(th, NULL);
			ok(rc == 0 && word(&c, 0, 3) == CTL_CIP,
			   "copy_begin waits for the write in flight to end: 0, DIRTY cleared (rc %d, word %#x)",
			   rc, word(&c, 0, 3));
			ok(ctl_copy_end(&c, 0, 3) == 1, "  copy_end: 1");
		} else {
			ok(0, "thread");
		}
	}

	/* I7: a write during the copy, with a wait of 0, goes ahead (RACED) */
	ctl_mark_dirty(&c, 0, 5);
	rc = ctl_copy_begin(&c, 0, 5, 0);
	ok(rc == 0, "copy_begin region 5: 0");
	rc = ctl_write_begin(&c, 0, 5, 0);
	ok(rc == 1, "write_begin during the copy (wait 0) goes ahead; DIRTY was cleared, so 1 (rc %d)", rc);
	ok(word(&c, 0, 5) & CTL_RACED, "  RACED set (word %#x)", word(&c, 0, 5));
	ctl_mark_dirty(&c, 0, 5);
	ctl_write_end(&c, 0, 5);
	rc = ctl_copy_end(&c, 0, 5);
	ok(rc == 0, "copy_end after a raced write: 0 (rc %d)", rc);
	ok(word(&c, 0, 5) == CTL_DIRTY, "  region dirty, CIP and RACED clear (word %#x)", word(&c, 0, 5));

	/* the same without the caller's mark: copy_end keeps it dirty itself */
	ok(ctl_copy_begin(&c, 1, 2, 0) == 0 && ctl_write_begin(&c, 1, 2, 0) == 1,
	   "pair 1: copy_begin, then a raced write_begin on the clean region: 1");
	ctl_write_end(&c, 1, 2);
	rc = ctl_copy_end(&c, 1, 2);
	ok(rc == 0 && word(&c, 1, 2) == CTL_DIRTY,
	   "copy_end after an unmarked raced write: 0 and DIRTY set (rc %d, word %#x)", rc, word(&c, 1, 2));

	/* re-dirtied during the copy without a write (the copier marking a
	 * region again from the dirty log): not clean as of the copy */
	ok(ctl_copy_begin(&c, 1, 3, 0) == 0, "pair 1 region 3: copy_begin");
	ctl_mark_dirty(&c, 1, 3);
	rc = ctl_copy_end(&c, 1, 3);
	ok(rc == 0 && word(&c, 1, 3) == CTL_DIRTY, "copy_end of a region re-dirtied during the copy: 0, dirty (rc %d, word %#x)",
	   rc, word(&c, 1, 3));

	/* a raced write still in flight at copy_end */
	ok(ctl_copy_begin(&c, 0, 6, 0) == 0 && ctl_write_begin(&c, 0, 6, 0) == 1,
	   "region 6: copy_begin, then a raced write_begin: 1");
	ctl_mark_dirty(&c, 0, 6);
	rc = ctl_copy_end(&c, 0, 6);
	ok(rc == 0, "copy_end with a raced write still in flight: 0 (rc %d)", rc);
	ctl_write_end(&c, 0, 6);
	ok(word(&c, 0, 6) == CTL_DIRTY, "  then dirty, nothing in flight (word %#x)", word(&c, 0, 6));

	/* a write with a small wait while CIP is held goes ahead when the
	 * wait is over (I7: never longer) and is marked RACED */
	rc = ctl_copy_begin(&c, 0, 8, 0);
	rc = rc == 0 ? ctl_write_begin(&c, 0, 8, 2000) : -1;
	ok(rc == 1 && (word(&c, 0, 8) & CTL_RACED),
	   "write_begin with a 2 ms wait on a held region returns 1, RACED (rc %d)", rc);
	ctl_mark_dirty(&c, 0, 8);
	ctl_write_end(&c, 0, 8);
	ok(ctl_copy_end(&c, 0, 8) == 0 && word(&c, 0, 8) == CTL_DIRTY, "  copy_end: 0, dirty");

	/* a write with a long wait is not let in while CIP is held */
	rc = ctl_copy_begin(&c, 0, 10, 0);
	{
		struct waiter w = { .c = &c, .pair = 0, .r = 10 };
		int early = 0;

		if (rc == 0 && pthread_create(&th, NULL, write_with_long_wait, &w) == 0) {
			for (int i = 0; i < 2000; i++) {
				early |= atomic_load(&w.done);
				sched_yield();
			}
			early |= atomic_load(&w.done);
			rc = ctl_copy_end(&c, 0, 10);
			pthread_join(th, NULL);
			ok(!early && rc == 1, "write_begin with a long wait did not enter during the copy (copy_end %d)",
			   rc);
			ok(w.rc == 1 && !(w.seen & (CTL_CIP | CTL_RACED)) && (w.seen & CTL_INFLIGHT) == 1,
			   "  it entered after copy_end, on a clean region (rc %d, word %#x)", w.rc, w.seen);
			ctl_write_end(&c, 0, 10);
		} else {
			ok(0, "copy_begin and thread");
		}
	}
	ok(ctl_dirty_count(&c, 0) == 4 && ctl_dirty_count(&c, 1) == 2,
	   "dirty count: pair 0 4 (regions 2, 5, 6, 8), pair 1 2 (2, 3) (got %" PRIu64 ", %" PRIu64 ")",
	   ctl_dirty_count(&c, 0), ctl_dirty_count(&c, 1));
	ctl_detach(&c);
}

/* The commit's end of a copy: the region stays marked dirty, clean copy or
 * not, so a write after it logs no record; what it reports is ctl_copy_end's. */
static void test_held(void)
{
	struct ctl_params p;
	struct ctl c;
	char path[128];
	int rc;

	if (new_block(&c, &p, path, sizeof(path), "held", 8, "the held checks") < 0)
		return;
	ctl_publish(&c, 1);
	for (uint64_t r = 0; r < 4; r++)
		ctl_mark_dirty(&c, 0, r);
	rc = ctl_copy_begin(&c, 0, 0, 0);
	rc = rc ? rc : ctl_copy_end_held(&c, 0, 0);
	ok(rc == 1 && word(&c, 0, 0) == CTL_DIRTY,
	   "copy_end_held with no write: 1, and the region still dirty, CIP clear (rc %d, word %#x)",
	   rc, word(&c, 0, 0));
	rc = ctl_write_begin(&c, 0, 0, 0);
	ok(rc == 0, "  a write after it finds the region dirty: no record (rc %d)", rc);
	ctl_write_end(&c, 0, 0);

	/* a write raced the copy (I7 wait of 0): not clean */
	rc = ctl_copy_begin(&c, 0, 1, 0);
	rc = rc ? rc : ctl_write_begin(&c, 0, 1, 0);
	ok(rc == 1 && (word(&c, 0, 1) & CTL_RACED), "region 1: a write raced the copy (word %#x)",
	   word(&c, 0, 1));
	ctl_write_end(&c, 0, 1);
	rc = ctl_copy_end_held(&c, 0, 1);
	ok(rc == 0 && word(&c, 0, 1) == CTL_DIRTY,
	   "copy_end_held after a raced write: 0, dirty, RACED clear (rc %d, word %#x)", rc,
	   word(&c, 0, 1));

	/* a write still in flight at the end: not clean, still counted */
	rc = ctl_copy_begin(&c, 0, 2, 0);
	rc = rc ? rc : ctl_write_begin(&c, 0, 2, 0);
	ok(rc == 1, "region 2: a raced write_begin: 1 (rc %d)", rc);
	rc = ctl_copy_end_held(&c, 0, 2);
	ok(rc == 0 && word(&c, 0, 2) == (CTL_DIRTY | 1),
	   "copy_end_held with the write in flight: 0, dirty, the write counted (rc %d, word %#x)",
	   rc, word(&c, 0, 2));
	ctl_write_end(&c, 0, 2);

	/* re-dirtied during the copy without a write: not clean */
	rc = ctl_copy_begin(&c, 0, 3, 0);
	ctl_mark_dirty(&c, 0, 3);
	rc = rc ? rc : ctl_copy_end_held(&c, 0, 3);
	ok(rc == 0 && word(&c, 0, 3) == CTL_DIRTY,
	   "copy_end_held of a region marked dirty during the copy: 0 (rc %d, word %#x)", rc,
	   word(&c, 0, 3));
	ok(ctl_dirty_count(&c, 0) == 4, "all four regions dirty (%" PRIu64 ")", ctl_dirty_count(&c, 0));
	ctl_detach(&c);
}

/* Monotonic milliseconds, for the bounded waits' checks. */
static double mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---- the commit barrier ----------------------------------------------- */

/* Raise the barrier as holder, time one ctl_barrier_wait of wait_us. */
static double barrier_ms(struct ctl *c, int32_t holder, uint64_t wait_us)
{
	double t;

	atomic_store(&c->hdr->barrier_pid, holder);
	t = mono_ms();
	ctl_barrier_wait(c, wait_us);
	return mono_ms() - t;
}

static void *lower_barrier(void *arg)
{
	struct ctl *c = arg;
	struct timespec ts = { .tv_nsec = 20 * 1000 * 1000 };

	nanosleep(&ts, NULL);
	atomic_store(&c->hdr->barrier_pid, 0);
	return NULL;
}

/* The wait is none without a live holder, the whole bound (by the clock)
 * while one holds it, and over when the barrier comes down.  "No wait" is
 * checked as well under half of a 10 s bound. */
static void test_barrier(void)
{
	struct ctl_params p;
	struct ctl c;
	char path[128];
	pthread_t th;
	pid_t dead;
	double ms;

	if (new_block(&c, &p, path, sizeof(path), "barrier", 4, "the barrier checks") < 0)
		return;
	ctl_publish(&c, 1);
	ms = barrier_ms(&c, 0, 10000000);
	ok(ms < 5000, "no barrier: no wait (%.1f ms)", ms);
	dead = fork();
	if (dead == 0)
		_exit(0);
	waitpid(dead, NULL, 0);
	ms = barrier_ms(&c, dead, 10000000);
	ok(dead > 0 && ms < 5000, "a dead commit's barrier: no wait (%.1f ms)", ms);
	ms = barrier_ms(&c, -1, 10000000);
	ok(ms < 5000, "a barrier below 0 (a damaged block): no wait (%.1f ms)", ms);
	ms = barrier_ms(&c, getpid(), 30000);
	ok(ms >= 30.0 && atomic_load(&c.hdr->barrier_pid) == getpid(),
	   "a live holder: the whole 30 ms wait, by the clock (%.1f ms)", ms);
	atomic_store(&c.hdr->barrier_pid, getpid());
	if (pthread_create(&th, NULL, lower_barrier, &c) == 0) {
		double t = mono_ms();

		ctl_barrier_wait(&c, 10000000);
		ms = mono_ms() - t;
		pthread_join(th, NULL);
		ok(ms < 5000 && atomic_load(&c.hdr->barrier_pid) == 0,
		   "the barrier lowered during the wait ends it (%.1f ms)", ms);
	} else {
		ok(0, "thread");
	}
	ctl_detach(&c);
}

/* The untracked-write lock (byte 1): the builder's drain waits while a
 * writer holds it, gives up after its wait, and succeeds once it is let go,
 * releasing the byte again. */
static void test_untracked(void)
{
	int a, b, rc;
	double ms;

	a = ctl_lock_open(scratch);
	b = ctl_lock_open(scratch);
	if (a < 0 || b < 0) {
		ok(0, "ctl_lock_open (%d, %d)", a, b);
		return;
	}
	ok(ctl_lock_untracked(a) == 0, "a writer holds the untracked byte");
	ms = mono_ms();
	rc = ctl_lock_untracked_drain(b, 50);
	ms = mono_ms() - ms;
	ok(rc == -ETIMEDOUT && ms >= 50.0,
	   "the drain while it is held: -ETIMEDOUT, after its 50 ms wait (rc %d, %.1f ms)", rc, ms);
	close(a);
	ok(ctl_lock_untracked_drain(b, 50) == 0, "once the writer lets go: drained");
	a = ctl_lock_open(scratch);
	ok(a >= 0 && ctl_lock_untracked(a) == 0, "  and the byte is free for the next writer");
	if (a >= 0)
		close(a);
	close(b);
}

/* ---- stress ---------------------------------------------------------- */

#define WRITERS 4

struct stress {
	struct ctl *c;
	unsigned ops;                       /* per writer */
	_Atomic unsigned inflight[NREG];    /* writes between begin and end */
	_Atomic uint64_t started[NREG];     /* writes ever begun */
	_Atomic uint64_t last_end[NREG];    /* seq of the last write to complete */
	uint64_t good_copy[NREG];           /* seq at the start of the last clean copy */
	_Atomic uint64_t seq;
	_Atomic int stop;
	_Atomic unsigned violations, bad_rc;
	uint64_t copies_clean, copies_raced, copies_busy;
	char first_violation[160];
};

struct writer_arg {
	struct stress *s;
	uint64_t rng;
};

static void region_of(unsigned g, uint32_t *pair, uint64_t *r)
{
	*pair = g < 11 ? 0 : 1;
	*r = g < 11 ? g : g - 11;
}

static void busy(uint64_t *rng)
{
	unsigned n = (unsigned)(splitmix(rng) % 64);

	for (volatile unsigned i = 0; i < n; i++)
		;
	if (n == 0)
		sched_yield();
}

static void store_max(_Atomic uint64_t *a, uint64_t v)
{
	uint64_t cur = atomic_load(a);

	while (cur < v && !atomic_compare_exchange_weak(a, &cur, v))
		;
}

static void *writer_main(void *arg)
{
	struct writer_arg *w = arg;
	struct stress *s = w->s;

	for (unsigned i = 0; i < s->ops; i++) {
		unsigned g = (unsigned)(splitmix(&w->rng) % NREG);
		uint64_t wait = (splitmix(&w->rng) & 1) ? 0 : 200;
		uint32_t pair;
		uint64_t r;
		int rc;

		region_of(g, &pair, &r);
		rc = ctl_write_begin(s->c, pair, r, wait);
		atomic_fetch_add(&s->started[g], 1);
		atomic_fetch_add(&s->inflight[g], 1);
		if (rc == 1)
			ctl_mark_dirty(s->c, pair, r);
		else if (rc != 0)
			atomic_fetch_add(&s->bad_rc, 1);
		busy(&w->rng);
		store_max(&s->last_end[g], atomic_fetch_add(&s->seq, 1) + 1);
		atomic_fetch_sub(&s->inflight[g], 1);
		ctl_write_end(s->c, pair, r);
	}
	return NULL;
}

static void *copier_main(void *arg)
{
	struct stress *s = arg;
	uint64_t rng = seed ^ UINT64_C(0xc0c0c0c0);

	while (!atomic_load(&s->stop)) {
		unsigned g = (unsigned)(splitmix(&rng) % NREG);
		uint64_t wait = splitmix(&rng) % 500, s0, s1, cs;
		unsigned i0, i1;
		uint32_t pair;
		uint64_t r;
		int rc;

		region_of(g, &pair, &r);
		rc = ctl_copy_begin(s->c, pair, r, wait);
		if (rc == -EBUSY) {
			s->copies_busy++;
			continue;
		}
		if (rc != 0) {
			atomic_fetch_add(&s->bad_rc, 1);
			continue;
		}
		i0 = atomic_load(&s->inflight[g]);
		s0 = atomic_load(&s->started[g]);
		cs = atomic_fetch_add(&s->seq, 1) + 1;
		busy(&rng); /* the copy */
		i1 = atomic_load(&s->inflight[g]);
		s1 = atomic_load(&s->started[g]);
		rc = ctl_copy_end(s->c, pair, r);
		if (rc == 1) {
			s->copies_clean++;
			s->good_copy[g] = cs;
			if ((i0 || i1 || s0 != s1) && atomic_fetch_add(&s->violations, 1) == 0)
				snprintf(s->first_violation, sizeof(s->first_violation),
					 "region %u: copy_end 1 with in flight %u/%u, begun %" PRIu64
					 " -> %" PRIu64,
					 g, i0, i1, s0, s1);
		} else if (rc == 0) {
			s->copies_raced++;
		} else {
			atomic_fetch_add(&s->bad_rc, 1);
		}
	}
	return NULL;
}

/* CTL_QUIET: set by the copier on a dirty region while mirrored, cleared by
 * every write's begin (one region and a range), and no part of the region
 * protocol: a copy of a quiet region with nothing in flight is clean. */
static void test_quiet(void)
{
	struct ctl_params p;
	struct ctl c;
	char path[128];
	uint64_t lo, hi;
	int entry, rc;

	if (new_block(&c, &p, path, sizeof(path), "quiet", 8, "the quiet checks") < 0)
		return;
	ctl_publish(&c, 1);
	for (uint64_t r = 0; r < 4; r++)
		atomic_fetch_or(ctl_region(&c, 0, r), CTL_DIRTY | CTL_QUIET);
	rc = ctl_write_begin(&c, 0, 0, 0);
	ok(rc == 0 && word(&c, 0, 0) == (CTL_DIRTY | 1),
	   "write_begin on a quiet dirty region clears QUIET, keeps DIRTY (word %#x)", word(&c, 0, 0));
	ctl_write_end(&c, 0, 0);
	ctl_wbegin(&c, -1, 0, 1, 2, 0, &entry, &lo, &hi);
	ok(word(&c, 0, 1) == (CTL_DIRTY | 1) && word(&c, 0, 2) == (CTL_DIRTY | 1) &&
		   (word(&c, 0, 3) & CTL_QUIET) && lo > hi,
	   "wbegin over regions 1-2 clears QUIET on both, region 3 keeps it; none was clean "
	   "(words %#x %#x %#x)", word(&c, 0, 1), word(&c, 0, 2), word(&c, 0, 3));
	ctl_wend(&c, -1, 0, 1, 2, entry);
	rc = ctl_copy_begin(&c, 0, 3, 0);
	rc = rc ? rc : ctl_copy_end(&c, 0, 3);
	ok(rc == 1 && !(word(&c, 0, 3) & (CTL_DIRTY | CTL_CIP)),
	   "a copy of a quiet region with nothing in flight is clean (rc %d, word %#x)", rc,
	   word(&c, 0, 3));
	ctl_detach(&c);
}

static void test_stress(void)
{
	static struct stress s; /* large; zeroed */
	struct writer_arg wa[WRITERS];
	pthread_t wt[WRITERS], ct;
	struct ctl_params p;
	struct ctl c;
	char path[128];
	unsigned started = 0, stale = 0, in_bits = 0, unclean = 0;
	int copier_ok;
	const char *quick = getenv("VOLMIG_TEST_QUICK");

	if (new_block(&c, &p, path, sizeof(path), "stress", 13, "the stress test") < 0)
		return;
	s.c = &c;
	s.ops = (quick != NULL && *quick == '1') ? 5000 : 50000;
	/* odd regions start dirty: as if written before the copier started */
	for (unsigned g = 1; g < NREG; g += 2) {
		uint32_t pair;
		uint64_t r;

		region_of(g, &pair, &r);
		ctl_mark_dirty(&c, pair, r);
		atomic_store(&s.last_end[g], atomic_fetch_add(&s.seq, 1) + 1);
	}
	ctl_publish(&c, 1);

	copier_ok = pthread_create(&ct, NULL, copier_main, &s) == 0;
	for (unsigned i = 0; i < WRITERS && copier_ok; i++) {
		wa[i].s = &s;
		wa[i].rng = seed + i + 1;
		if (pthread_create(&wt[i], NULL, writer_main, &wa[i]) != 0)
			break;
		started++;
	}
	for (unsigned i = 0; i < started; i++)
		pthread_join(wt[i], NULL);
	atomic_store(&s.stop, 1);
	if (copier_ok)
		pthread_join(ct, NULL);
	ok(copier_ok && started == WRITERS, "stress: 1 copier and %d writers ran %u writes each", WRITERS,
	   s.ops);
	printf("# stress: copies clean %" PRIu64 ", raced %" PRIu64 ", busy %" PRIu64 "\n",
	       s.copies_clean, s.copies_raced, s.copies_busy);
	ok(atomic_load(&s.bad_rc) == 0, "stress: every call returned a documented value (%u did not)",
	   atomic_load(&s.bad_rc));
	ok(atomic_load(&s.violations) == 0,
	   "stress: copy_end never returned 1 while a write was in flight during the copy (%u times; %s)",
	   atomic_load(&s.violations), s.first_violation);

	for (unsigned g = 0; g < NREG; g++) {
		uint32_t pair, w;
		uint64_t r;

		region_of(g, &pair, &r);
		w = word(&c, pair, r);
		stale += atomic_load(&s.inflight[g]) != 0;
		in_bits += (w & (CTL_INFLIGHT | CTL_CIP | CTL_RACED)) != 0;
		/* I4: a region left clean holds no write newer than its last
		 * clean copy */
		if (!(w & CTL_DIRTY) && atomic_load(&s.last_end[g]) != 0 &&
		    atomic_load(&s.last_end[g]) >= s.good_copy[g]) {
			if (unclean++ == 0)
				printf("# region %u clean, last write seq %" PRIu64 ", last clean copy seq %" PRIu64 "\n",
				       g, atomic_load(&s.last_end[g]), s.good_copy[g]);
		}
	}
	ok(stale == 0 && in_bits == 0,
	   "stress: at the end nothing is in flight, no CIP or RACED (%u counters, %u words)", stale, in_bits);
	ok(unclean == 0, "stress: no region is clean with a write newer than its last clean copy (%u are)",
	   unclean);

	/* with the writers gone every region copies clean */
	{
		unsigned bad = 0;

		for (unsigned g = 0; g < NREG; g++) {
			uint32_t pair;
			uint64_t r;

			region_of(g, &pair, &r);
			bad += ctl_copy_begin(&c, pair, r, 0) != 0;
			bad += ctl_copy_end(&c, pair, r) != 1;
		}
		ok(bad == 0 && ctl_dirty_count(&c, 0) == 0 && ctl_dirty_count(&c, 1) == 0,
		   "stress: a final pass copies every region clean (%u failures)", bad);
	}
	ctl_detach(&c);
}

/* ---- processes ------------------------------------------------------- */

static void test_procs(void)
{
	struct ctl_params p;
	struct ctl c;
	char path[128];
	pid_t self = getpid(), dead, live = -1;
	int rc, pfd[2] = { -1, -1 }, status, n;
	char ch;

	if (new_block(&c, &p, path, sizeof(path), "procs", 17, "the process checks") < 0)
		return;
	ctl_publish(&c, 1);
	ok(ctl_live_procs(&c, 0) == 0, "no process registered: 0 live");

	dead = fork();
	if (dead == 0)
		_exit(0);
	if (dead < 0 || waitpid(dead, &status, 0) != dead) {
		ok(0, "fork and reap a child");
		goto out;
	}
	rc = ctl_proc_register(&c, self);
	ok(rc == 0, "register own pid (rc %d)", rc);
	rc = ctl_proc_register(&c, dead);
	ok(rc == 0, "register a reaped child's pid (rc %d)", rc);
	ok(ctl_live_procs(&c, 0) == 1, "live: 1, the dead pid not counted (got %u)", ctl_live_procs(&c, 0));
	ok(ctl_live_procs(&c, self) == 0, "live excluding self: 0 (got %u)", ctl_live_procs(&c, self));

	/* a live child, blocked on a pipe until we close it */
	if (pipe(pfd) == 0 && (live = fork()) == 0) {
		close(pfd[1]);
		while (read(pfd[0], &ch, 1) > 0)
			;
		_exit(0);
	}
	if (live > 0) {
		close(pfd[0]);
		pfd[0] = -1;
		ok(ctl_proc_register(&c, live) == 0, "register a live child");
		ok(ctl_live_procs(&c, 0) == 2 && ctl_live_procs(&c, live) == 1 && ctl_live_procs(&c, self) == 1,
		   "live: 2; excluding either one: 1");
		close(pfd[1]);
		pfd[1] = -1;
		waitpid(live, &status, 0);
		ok(ctl_live_procs(&c, 0) == 1, "the child exited and was reaped: live 1 (got %u)",
		   ctl_live_procs(&c, 0));
		ctl_proc_unregister(&c, live);
	} else {
		ok(0, "fork a live child");
	}

	ctl_proc_unregister(&c, self);
	ok(ctl_live_procs(&c, 0) == 0, "unregister self: 0 live");
	ctl_proc_unregister(&c, self); /* not registered: harmless */
	ctl_proc_unregister(&c, dead);

	/* the table holds CTL_MAX_PROCS entries */
	for (n = 0, rc = 0; n < CTL_MAX_PROCS && rc == 0; n++)
		rc = ctl_proc_register(&c, self);
	ok(rc == 0 && n == CTL_MAX_PROCS, "CTL_MAX_PROCS registrations fit (%d, rc %d)", n, rc);
	ok(ctl_live_procs(&c, 0) == CTL_MAX_PROCS, "every slot counted live (%u)", ctl_live_procs(&c, 0));
	rc = ctl_proc_register(&c, self);
	ok(rc == -ENOSPC, "one more: -ENOSPC (rc %d)", rc);
	ctl_proc_unregister(&c, self);
	ok(ctl_live_procs(&c, 0) == CTL_MAX_PROCS - 1, "unregister frees exactly one slot");
	rc = ctl_proc_register(&c, self);
	ok(rc == 0, "and the slot can be claimed again (rc %d)", rc);
	for (n = 0; n < CTL_MAX_PROCS; n++)
		ctl_proc_unregister(&c, self);
	ok(ctl_live_procs(&c, 0) == 0, "all unregistered: 0 live");
out:
	if (pfd[0] >= 0)
		close(pfd[0]);
	if (pfd[1] >= 0)
		close(pfd[1]);
	ctl_detach(&c);
}

static void test_path(void)
{
	char buf[256], want[256], missing[128];
	int rc;

	rc = ctl_path(scratch, buf, sizeof(buf));
	snprintf(want, sizeof(want), "%s/ctl", scratch);
	ok(rc == 0 && strcmp(buf, want) == 0, "ctl_path of an existing directory: 0, STATE/ctl (rc %d, %s)",
	   rc, buf);
	scratch_path(missing, sizeof(missing), "no-such-dir");
	rc = ctl_path(missing, buf, sizeof(buf));
	snprintf(want, sizeof(want), "%s/ctl", missing);
	ok(rc == 0 && strcmp(buf, want) == 0,
	   "ctl_path of a missing directory: 0, STATE/ctl (the path is not looked up) (rc %d)", rc);
	rc = ctl_path(scratch, buf, strlen(scratch) + 4);
	ok(rc == -ENAMETOOLONG, "ctl_path into a buffer one byte short: -ENAMETOOLONG (rc %d)", rc);
	rc = ctl_path(scratch, buf, strlen(scratch) + 5);
	snprintf(want, sizeof(want), "%s/ctl", scratch);
	ok(rc == 0 && strcmp(buf, want) == 0,
	   "ctl_path into a buffer of exactly the size: 0 (rc %d)", rc);
}

/* ctl_proc_start against field 22 of /proc/self/stat read another way, and
 * 0 for a process that is gone. */
static void test_proc_start(void)
{
	char buf[1024], *p;
	unsigned long long want = 0;
	FILE *f = fopen("/proc/self/stat", "r");
	pid_t child;
	int field = 0;

	if (f == NULL || fgets(buf, sizeof(buf), f) == NULL) {
		ok(0, "read /proc/self/stat");
		if (f != NULL)
			fclose(f);
		return;
	}
	fclose(f);
	p = strrchr(buf, ')') + 2; /* field 3 */
	for (field = 3; field < 22; field++)
		p = strchr(p, ' ') + 1;
	want = strtoull(p, NULL, 10);
	ok(want != 0 && ctl_proc_start(getpid()) == want,
	   "ctl_proc_start(self) is the start time, field 22 (%llu)", want);
	child = fork();
	if (child == 0)
		_exit(0);
	/* a zombie until reaped: wait for it to exit without reaping it */
	{
		siginfo_t si;

		waitid(P_PID, (id_t)child, &si, WEXITED | WNOWAIT);
	}
	ok(ctl_proc_start(child) == 0, "ctl_proc_start of an exited, unreaped process (zombie) is 0");
	waitpid(child, NULL, 0);
	ok(ctl_proc_start(child) == 0, "ctl_proc_start of a reaped process is 0");
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
	test_create_attach();
	test_pristine();
	test_dirty_tail();
	test_validate();
	test_attach_corrupt();
	test_protocol();
	test_quiet();
	test_held();
	test_untracked();
	test_barrier();
	test_stress();
	test_procs();
	test_path();
	test_proc_start();
	rm_tree(scratch);
	return tap_done();
}
