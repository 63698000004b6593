/*
 * fuzz target "ctl": the control-block validator of lib/ctl.h,
 * ctl_validate, which stands between every process and a shared segment
 * that may be foreign, stale or corrupted; and the blocks ctl_create makes.
 *
 * Input:
 *   byte 0    bit 0 set: raw mode.  The block is the input laid over the
 *             start of a zeroed buffer (the header and a little more), the
 *             buffer's length chosen by the input; byte 1 picks repairs
 *             applied before validation, so mutations reach the deeper
 *             rules: bit 0 magic, version and header size; bit 2 the pair
 *             table (region counts from the sizes, consecutive first
 *             regions, the total); bit 3 the string table and region array
 *             offsets; bit 4 the buffer length (just the region array);
 *             bit 1 the map size (= the length); bit 5 the checksum.
 *             Bytes 2..4 choose the length when bit 4 does not.
 *             bit 0 clear: create mode.  The input gives the parameters of
 *             a block (pairs, region shift, sizes, identities, paths);
 *             ctl_create makes it in a scratch file, and the rest of the
 *             input is a list of byte edits (offset, xor) applied to it.
 *
 * Contract asserted (ctl.h): ctl_validate returns 0 or -EBADMSG, reads
 * nothing past len (the buffer is an exact heap allocation), and accepts a
 * block exactly when a reference validator written here from the documented
 * rules does: magic, version, header size, map size == len, 1..64 pairs, a
 * region shift of 12..30, the string table within the block and past the
 * header, a page-aligned region array past the string table and within the
 * block, each pair's region count right for its size and the pairs' regions
 * consecutive and adding up to nregions, each path within the string table,
 * and the FNV-1a checksum of the immutable part.  Whatever is accepted is
 * safe to index: every region word of every pair lies within len.  Every
 * block ctl_create makes carries its parameters, NUL-terminated paths, zero
 * region words and ready == 0, and validates; changing any byte of its
 * immutable part (checksum included) makes it fail validation; changing
 * bytes of the mutable part does not.
 */
#define FUZZ_NAME "ctl"
#include "fuzz.h"

#include "ctl.h"

typedef unsigned __int128 u128;

#define PAGE 4096u
#define CKSUM_OFF offsetof(struct ctl_hdr, checksum)
#define IMMUTABLE_END (CKSUM_OFF + 8)
#define OVERLAY 8192u /* raw mode: input bytes laid over the block's start */
#define MAX_EXTRA (512u * 1024)
#define MIN_LEN (sizeof(struct ctl_hdr) - PAGE)
#define MAX_LEN (sizeof(struct ctl_hdr) + MAX_EXTRA)

static uint64_t fnv1a(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t h = UINT64_C(0xcbf29ce484222325);

	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= UINT64_C(0x100000001b3);
	}
	return h;
}

static u128 count_regions(uint64_t size, uint32_t shift)
{
	return ((u128)size + ((u128)1 << shift) - 1) >> shift;
}

/* The documented rules, independently of lib/ctl.c. */
static bool ref_valid(const void *buf, size_t len)
{
	const struct ctl_hdr *h = buf;
	u128 strtab_end, running = 0;

	if (len < sizeof(*h))
		return false;
	if (h->magic != CTL_MAGIC || h->version != CTL_VERSION || h->hdr_size != sizeof(*h) ||
	    h->map_size != len)
		return false;
	if (h->npairs < 1 || h->npairs > CTL_MAX_PAIRS || h->region_shift < 12 ||
	    h->region_shift > 30)
		return false;
	strtab_end = (u128)h->strtab_off + h->strtab_len;
	if (h->strtab_off < sizeof(*h) || strtab_end > len)
		return false;
	if (h->regions_off % PAGE != 0 || h->regions_off < strtab_end ||
	    (u128)h->regions_off + (u128)h->nregions * 4 > len)
		return false;
	for (uint32_t i = 0; i < h->npairs; i++) {
		const struct ctl_pair *p = &h->pairs[i];

		if (p->nregions != count_regions(p->size, h->region_shift) ||
		    p->first_region != running)
			return false;
		running += p->nregions;
		if ((u128)p->source_off + p->source_len > h->strtab_len ||
		    (u128)p->target_off + p->target_len > h->strtab_len)
			return false;
	}
	return running == h->nregions && fnv1a(h, CKSUM_OFF) == h->checksum;
}

/* What a process may do with an accepted block stays inside it. */
static void check_safe(const void *buf, size_t len)
{
	const struct ctl_hdr *h = buf;

	for (uint32_t i = 0; i < h->npairs; i++) {
		const struct ctl_pair *p = &h->pairs[i];

		FUZZ_CHECK((u128)h->regions_off + ((u128)p->first_region + p->nregions) * 4 <= len,
			   "accepted: pair %u's region words run past the block", i);
		FUZZ_CHECK((u128)h->strtab_off + p->source_off + p->source_len <= len &&
				   (u128)h->strtab_off + p->target_off + p->target_len <= len,
			   "accepted: pair %u's paths run past the block", i);
	}
}

static int validate(const void *buf, size_t len)
{
	int rc = ctl_validate(buf, len), want = ref_valid(buf, len) ? 0 : -EBADMSG;

	FUZZ_CHECK(rc == 0 || rc == -EBADMSG, "ctl_validate returned %d", rc);
	FUZZ_CHECK(rc == want, "ctl_validate %s a block the documented rules %s",
		   rc == 0 ? "accepted" : "rejected", want == 0 ? "accept" : "reject");
	if (rc == 0)
		check_safe(buf, len);
	return rc;
}

static int raw(const uint8_t *data, size_t len)
{
	static struct ctl_hdr h; /* the first sizeof(h) bytes of the block */
	uint8_t *over = (uint8_t *)&h, *buf;
	unsigned fix = len > 1 ? data[1] : 0;
	size_t blen, n;
	int rc;

	memset(&h, 0, OVERLAY); /* nothing below writes past OVERLAY */
	blen = MIN_LEN + (size_t)(len > 4 ? fz_le(data + 2, 3) : 0) % (MAX_LEN - MIN_LEN + 1);
	n = len > 5 ? len - 5 : 0;
	memcpy(over, data + 5, n < OVERLAY ? n : OVERLAY);
	if (fix & 1) {
		h.magic = CTL_MAGIC;
		h.version = CTL_VERSION;
		h.hdr_size = sizeof(h);
	}
	if ((fix & 4) && h.npairs <= CTL_MAX_PAIRS && h.region_shift < 64) {
		uint64_t first = 0;

		for (uint32_t i = 0; i < h.npairs; i++) {
			struct ctl_pair *cp = &h.pairs[i];

			cp->nregions = (uint64_t)count_regions(cp->size, h.region_shift);
			cp->first_region = first;
			first += cp->nregions;
		}
		h.nregions = first;
	}
	if (fix & 8) {
		h.strtab_off = sizeof(h);
		h.regions_off = (sizeof(h) + (h.strtab_len % MAX_EXTRA) + PAGE - 1) / PAGE * PAGE;
	}
	if ((fix & 16) && (u128)h.regions_off + (u128)h.nregions * 4 <= MAX_LEN &&
	    h.regions_off + h.nregions * 4 >= MIN_LEN)
		blen = (size_t)(h.regions_off + h.nregions * 4);
	if (fix & 2)
		h.map_size = blen;
	if (fix & 32)
		h.checksum = fnv1a(&h, CKSUM_OFF);

	/* exact size, so a read past the end is a heap overflow under ASan */
	buf = calloc(1, blen);
	if (buf == NULL)
		abort();
	memcpy(buf, &h, blen < OVERLAY ? blen : OVERLAY);
	rc = validate(buf, blen);
	free(buf);
	return rc == 0;
}

static const char *scratch_dir(void)
{
	const char *t = getenv("TMPDIR");

	if (access("/dev/shm", W_OK) == 0)
		return "/dev/shm";
	return t != NULL && *t != '\0' ? t : "/tmp";
}

static void check_created(const struct ctl *c, const struct ctl_params *p)
{
	const struct ctl_hdr *h = c->hdr;
	const char *strtab = (const char *)h + h->strtab_off;
	uint64_t first = 0;

	FUZZ_CHECK(h->map_size == c->map_size && h->session_id == p->session_id &&
			   h->region_shift == p->region_shift && h->npairs == p->npairs &&
			   h->flags == p->flags,
		   "the created block does not carry its parameters");
	FUZZ_CHECK(atomic_load(&h->ready) == 0, "a created block is ready before it is published");
	for (uint32_t i = 0; i < p->npairs; i++) {
		const struct ctl_pair *cp = &h->pairs[i];

		FUZZ_CHECK(cp->size == p->sizes[i] &&
				   cp->nregions == count_regions(p->sizes[i], p->region_shift) &&
				   cp->first_region == first,
			   "pair %u: size or regions wrong in the created block", i);
		FUZZ_CHECK(!memcmp(&cp->source_id, &p->source_ids[i], sizeof(p->source_ids[i])) &&
			   !memcmp(&cp->target_id, &p->target_ids[i], sizeof(p->target_ids[i])),
			   "pair %u: identities wrong in the created block", i);
		FUZZ_CHECK(cp->source_len == strlen(p->sources[i]) &&
				   strcmp(strtab + cp->source_off, p->sources[i]) == 0 &&
				   cp->target_len == strlen(p->targets[i]) &&
				   strcmp(strtab + cp->target_off, p->targets[i]) == 0,
			   "pair %u: paths wrong in the created block", i);
		if (cp->nregions > 0)
			FUZZ_CHECK(atomic_load(ctl_region(c, i, 0)) == 0 &&
					   atomic_load(ctl_region(c, i, cp->nregions - 1)) == 0,
				   "pair %u: region words of a new block are not zero", i);
		first += cp->nregions;
	}
}

static int create(const uint8_t *data, size_t len)
{
	static struct ctl_params p;
	static char paths[2 * CTL_MAX_PAIRS][64];
	static uint8_t before[OVERLAY];
	struct fz_in in = { .p = data, .len = len };
	char path[256];
	struct ctl c;
	bool immutable_changed = false;
	int rc;

	memset(&p, 0, sizeof(p));
	fz_take(&in, 1); /* the mode byte */
	p.npairs = 1 + (uint32_t)fz_take(&in, 1) % CTL_MAX_PAIRS;
	p.region_shift = 12 + (uint32_t)fz_take(&in, 1) % 19;
	p.session_id = fz_num(&in);
	p.flags = (uint32_t)fz_take(&in, 4);
	for (uint32_t i = 0; i < p.npairs; i++) {
		char *src = paths[2 * i], *tgt = paths[2 * i + 1];
		size_t sl = fz_take(&in, 1) % 64, tl = fz_take(&in, 1) % 64;

		/* at most 2^16 regions a pair, so the scratch file stays small */
		p.sizes[i] = fz_num(&in) % (UINT64_C(1) << (p.region_shift + 16));
		p.source_ids[i].kind = (uint32_t)fz_take(&in, 1);
		p.source_ids[i].dev = fz_num(&in);
		p.target_ids[i].kind = (uint32_t)fz_take(&in, 1);
		p.target_ids[i].rdev = fz_num(&in);
		for (size_t k = 0; k < sl; k++)
			src[k] = (char)fz_take(&in, 1);
		src[sl] = '\0';
		for (size_t k = 0; k < tl; k++)
			tgt[k] = (char)fz_take(&in, 1);
		tgt[tl] = '\0';
		p.sources[i] = src;
		p.targets[i] = tgt;
	}

	snprintf(path, sizeof(path), "%s/volmig-fuzz-ctl.%d", scratch_dir(), (int)getpid());
	rc = ctl_create(&c, path, &p);
	if (rc < 0) {
		/* a full or missing scratch file system is not the validator's fault */
		FUZZ_CHECK(rc == -ENOSPC || rc == -ENOMEM || rc == -EACCES || rc == -ENOENT ||
				   rc == -EROFS,
			   "ctl_create: %s", strerror(-rc));
		return 0;
	}
	check_created(&c, &p);
	FUZZ_CHECK(validate(c.hdr, c.map_size) == 0, "a block ctl_create made fails validation");

	/* edits: (u16 offset, xor) pairs, within the first OVERLAY bytes */
	memcpy(before, c.hdr, OVERLAY);
	while (!in.end) {
		size_t off = (size_t)fz_take(&in, 2) % OVERLAY;
		uint8_t x = (uint8_t)fz_take(&in, 1);

		((uint8_t *)c.hdr)[off] ^= x;
	}
	for (size_t i = 0; i < IMMUTABLE_END; i++)
		immutable_changed |= ((uint8_t *)c.hdr)[i] != before[i];
	rc = validate(c.hdr, c.map_size);
	FUZZ_CHECK(immutable_changed ? rc == -EBADMSG : rc == 0,
		   "after edits %s the immutable part, validation says %d",
		   immutable_changed ? "to" : "outside", rc);
	ctl_detach(&c);
	unlink(path);
	return rc == 0;
}

static int fuzz_one(const uint8_t *data, size_t len)
{
	if (len < 1)
		return 0;
	return (data[0] & 1) ? raw(data, len) : create(data, len);
}
