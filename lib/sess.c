/*
 * sess: session record encoding.
 *
 * Layout (little-endian):
 *   u32 magic 'VMSR', u32 version, u32 total length (including checksum),
 *   u32 state, u32 region_shift, u32 flags, u64 id, u64 created, u32 npairs,
 *   per pair: u64 size, u64 target_size, u64 reserve, 2 x ident
 *   (u32 kind, u64 dev, u64 ino, u64 rdev), u16 source length, source bytes,
 *   u16 target length, target bytes;
 *   u64 XXH3-64 of every byte before it.
 */
#include "sess.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define SESS_MAGIC 0x52534d56u /* "VMSR" */

static const char *const state_names[SESS_NSTATES] = {
	"setup", "copying", "synced", "switched", "committed", "aborted",
};

const char *sess_state_name(uint32_t state)
{
	return state < SESS_NSTATES ? state_names[state] : "unknown";
}

int sess_ident_from_stat(const struct stat *st, struct sess_ident *id)
{
	memset(id, 0, sizeof(*id));
	if (S_ISBLK(st->st_mode)) {
		id->kind = SESS_KIND_BLOCK;
		id->rdev = (uint64_t)st->st_rdev;
		return 0;
	}
	if (S_ISREG(st->st_mode)) {
		id->kind = SESS_KIND_FILE;
		id->dev = (uint64_t)st->st_dev;
		id->ino = (uint64_t)st->st_ino;
		return 0;
	}
	return -EINVAL;
}

int sess_ident_equal(const struct sess_ident *a, const struct sess_ident *b)
{
	if (a->kind != b->kind)
		return 0;
	if (a->kind == SESS_KIND_BLOCK)
		return a->rdev == b->rdev;
	return a->dev == b->dev && a->ino == b->ino;
}

int sess_add_pair(struct sess *s, const char *source, const char *target)
{
	struct sess_pair *pairs, *p;

	if (s->npairs >= SESS_MAX_PAIRS)
		return -E2BIG;
	if (strlen(source) > SESS_PATH_MAX || strlen(target) > SESS_PATH_MAX)
		return -ENAMETOOLONG;
	pairs = realloc(s->pairs, (s->npairs + 1) * sizeof(*pairs));
	if (pairs == NULL)
		return -ENOMEM;
	s->pairs = pairs;
	p = &pairs[s->npairs];
	memset(p, 0, sizeof(*p));
	p->source = strdup(source);
	p->target = strdup(target);
	if (p->source == NULL || p->target == NULL) {
		free(p->source);
		free(p->target);
		return -ENOMEM;
	}
	s->npairs++;
	return 0;
}

void sess_release(struct sess *s)
{
	for (uint32_t i = 0; i < s->npairs; i++) {
		free(s->pairs[i].source);
		free(s->pairs[i].target);
	}
	free(s->pairs);
	memset(s, 0, sizeof(*s));
}

/* A cursor over a byte buffer; any overrun sets bad and yields zeros. */
struct buf {
	uint8_t *p;
	const uint8_t *rp;
	size_t len, pos;
	int bad;
};

static void put(struct buf *b, const void *v, size_t n)
{
	if (b->p)
		memcpy(b->p + b->pos, v, n);
	b->pos += n;
}

static void put_u16(struct buf *b, uint16_t v)
{
	uint8_t x[2] = { (uint8_t)v, (uint8_t)(v >> 8) };
	put(b, x, 2);
}

static void put_u32(struct buf *b, uint32_t v)
{
	uint8_t x[4];
	for (int i = 0; i < 4; i++)
		x[i] = (uint8_t)(v >> (8 * i));
	put(b, x, 4);
}

static void put_u64(struct buf *b, uint64_t v)
{
	uint8_t x[8];
	for (int i = 0; i < 8; i++)
		x[i] = (uint8_t)(v >> (8 * i));
	put(b, x, 8);
}

static const uint8_t *take(struct buf *b, size_t n)
{
	const uint8_t *p;

	if (b->bad || n > b->len - b->pos) {
		b->bad = 1;
		return NULL;
	}
	p = b->rp + b->pos;
	b->pos += n;
	return p;
}

static uint64_t get_le(struct buf *b, size_t n)
{
	const uint8_t *p = take(b, n);
	uint64_t v = 0;

	if (p == NULL)
		return 0;
	for (size_t i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void put_ident(struct buf *b, const struct sess_ident *id)
{
	put_u32(b, id->kind);
	put_u64(b, id->dev);
	put_u64(b, id->ino);
	put_u64(b, id->rdev);
}

static void get_ident(struct buf *b, struct sess_ident *id)
{
	id->kind = (uint32_t)get_le(b, 4);
	id->dev = get_le(b, 8);
	id->ino = get_le(b, 8);
	id->rdev = get_le(b, 8);
	if (id->kind != SESS_KIND_FILE && id->kind != SESS_KIND_BLOCK)
		b->bad = 1;
}

static void encode_into(const struct sess *s, struct buf *b, size_t total)
{
	put_u32(b, SESS_MAGIC);
	put_u32(b, SESS_VERSION);
	put_u32(b, (uint32_t)total);
	put_u32(b, s->state);
	put_u32(b, s->region_shift);
	put_u32(b, s->flags);
	put_u64(b, s->id);
	put_u64(b, s->created);
	put_u32(b, s->npairs);
	for (uint32_t i = 0; i < s->npairs; i++) {
		const struct sess_pair *p = &s->pairs[i];
		size_t sl = strlen(p->source), tl = strlen(p->target);

		put_u64(b, p->size);
		put_u64(b, p->target_size);
		put_u64(b, p->reserve);
		put_ident(b, &p->source_id);
		put_ident(b, &p->target_id);
		put_u16(b, (uint16_t)sl);
		put(b, p->source, sl);
		put_u16(b, (uint16_t)tl);
		put(b, p->target, tl);
	}
}

int sess_encode(const struct sess *s, uint8_t **out, size_t *len)
{
	struct buf b = { 0 };
	size_t total;
	uint8_t *mem;

	encode_into(s, &b, 0);
	total = b.pos + 8;
	mem = malloc(total);
	if (mem == NULL)
		return -ENOMEM;
	b = (struct buf){ .p = mem };
	encode_into(s, &b, total);
	put_u64(&b, XXH3_64bits(mem, total - 8));
	*out = mem;
	*len = total;
	return 0;
}

static char *get_path(struct buf *b)
{
	size_t n = (size_t)get_le(b, 2);
	const uint8_t *p;
	char *s;

	if (n == 0 || n > SESS_PATH_MAX) {
		b->bad = 1;
		return NULL;
	}
	p = take(b, n);
	if (p == NULL || memchr(p, '\0', n) != NULL) {
		b->bad = 1;
		return NULL;
	}
	s = malloc(n + 1);
	if (s == NULL)
		return NULL;
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

int sess_decode(const uint8_t *data, size_t len, struct sess *s)
{
	struct buf b = { .rp = data, .len = len };
	uint32_t npairs, version;
	int rc = -EBADMSG;

	memset(s, 0, sizeof(*s));
	if (len < 12 || get_le(&b, 4) != SESS_MAGIC)
		return -EBADMSG;
	version = (uint32_t)get_le(&b, 4);
	if (get_le(&b, 4) != len)
		return -EBADMSG;
	if (len < 8 + 12 || XXH3_64bits(data, len - 8) !=
	    (uint64_t)(data[len - 8] | (uint64_t)data[len - 7] << 8 |
		       (uint64_t)data[len - 6] << 16 | (uint64_t)data[len - 5] << 24 |
		       (uint64_t)data[len - 4] << 32 | (uint64_t)data[len - 3] << 40 |
		       (uint64_t)data[len - 2] << 48 | (uint64_t)data[len - 1] << 56))
		return -EBADMSG;
	if (version != SESS_VERSION) {
		s->version = version;
		return -EPROTONOSUPPORT;
	}
	b.len = len - 8; /* the checksum is not part of the body */
	s->version = version;
	s->state = (uint32_t)get_le(&b, 4);
	s->region_shift = (uint32_t)get_le(&b, 4);
	s->flags = (uint32_t)get_le(&b, 4);
	s->id = get_le(&b, 8);
	s->created = get_le(&b, 8);
	npairs = (uint32_t)get_le(&b, 4);
	if (b.bad || s->state >= SESS_NSTATES || s->region_shift < 12 ||
	    s->region_shift > 30 || npairs == 0 || npairs > SESS_MAX_PAIRS)
		goto fail;
	s->pairs = calloc(npairs, sizeof(*s->pairs));
	if (s->pairs == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	for (uint32_t i = 0; i < npairs; i++) {
		struct sess_pair *p = &s->pairs[i];

		p->size = get_le(&b, 8);
		p->target_size = get_le(&b, 8);
		p->reserve = get_le(&b, 8);
		get_ident(&b, &p->source_id);
		get_ident(&b, &p->target_id);
		p->source = get_path(&b);
		if (p->source == NULL && !b.bad) {
			rc = -ENOMEM;
			goto fail_pairs;
		}
		s->npairs = i + 1; /* release() frees what is there */
		p->target = get_path(&b);
		if (p->target == NULL && !b.bad) {
			rc = -ENOMEM;
			goto fail_pairs;
		}
		if (b.bad)
			goto fail_pairs;
	}
	if (b.pos != b.len)
		goto fail_pairs;
	return 0;

fail_pairs:
	sess_release(s);
	return rc;
fail:
	memset(s, 0, sizeof(*s));
	return rc;
}
