/*
 * region: bitmap of regions with a population count.
 */
#include "region.h"

#include <errno.h>
#include <stdlib.h>

void region_span(uint64_t off, uint64_t len, unsigned shift,
		 uint64_t *first, uint64_t *n)
{
	uint64_t last;

	if (len == 0) {
		*first = off >> shift;
		*n = 0;
		return;
	}
	last = (len - 1 > UINT64_MAX - off) ? UINT64_MAX : off + (len - 1);
	*first = off >> shift;
	*n = (last >> shift) - *first + 1;
}

bool region_size_valid(uint64_t v, unsigned *shift)
{
	unsigned s;

	if (v < 4096 || v > (UINT64_C(1) << 30) || (v & (v - 1)) != 0)
		return false;
	for (s = 0; (UINT64_C(1) << s) != v; s++)
		;
	*shift = s;
	return true;
}

int region_map_init(struct region_map *m, uint64_t nbits)
{
	/* nbits / 64 rounded up, without the overflow of (nbits + 63) */
	uint64_t nwords = nbits / 64 + (nbits % 64 != 0);

	m->nbits = 0;
	m->count = 0;
	m->words = calloc(nwords ? nwords : 1, sizeof(uint64_t));
	if (m->words == NULL)
		return -ENOMEM;
	m->nbits = nbits;
	return 0;
}

void region_map_release(struct region_map *m)
{
	free(m->words);
	m->words = NULL;
	m->nbits = 0;
	m->count = 0;
}

int region_map_set(struct region_map *m, uint64_t i)
{
	uint64_t bit = UINT64_C(1) << (i & 63);
	uint64_t *w = &m->words[i >> 6];

	if (*w & bit)
		return 0;
	*w |= bit;
	m->count++;
	return 1;
}

int region_map_clear(struct region_map *m, uint64_t i)
{
	uint64_t bit = UINT64_C(1) << (i & 63);
	uint64_t *w = &m->words[i >> 6];

	if (!(*w & bit))
		return 0;
	*w &= ~bit;
	m->count--;
	return 1;
}

bool region_map_test(const struct region_map *m, uint64_t i)
{
	return (m->words[i >> 6] >> (i & 63)) & 1;
}

/* Bits [lo, hi) of one word as a mask; 0 <= lo < hi <= 64. */
static uint64_t word_mask(unsigned lo, unsigned hi)
{
	uint64_t upper = hi == 64 ? ~UINT64_C(0) : (UINT64_C(1) << hi) - 1;

	return upper & ~((UINT64_C(1) << lo) - 1);
}

static uint64_t range_apply(struct region_map *m, uint64_t first, uint64_t n, bool set)
{
	uint64_t end, changed = 0;

	if (first >= m->nbits)
		return 0;
	end = (n > m->nbits - first) ? m->nbits : first + n;
	while (first < end) {
		unsigned lo = (unsigned)(first & 63);
		unsigned hi = (end - (first - lo) >= 64) ? 64 : (unsigned)(end - (first - lo));
		uint64_t mask = word_mask(lo, hi);
		uint64_t *w = &m->words[first >> 6];
		uint64_t before = *w;

		*w = set ? (before | mask) : (before & ~mask);
		changed += (uint64_t)__builtin_popcountll(before ^ *w);
		first += hi - lo;
	}
	if (set)
		m->count += changed;
	else
		m->count -= changed;
	return changed;
}

uint64_t region_map_set_range(struct region_map *m, uint64_t first, uint64_t n)
{
	return range_apply(m, first, n, true);
}

uint64_t region_map_clear_range(struct region_map *m, uint64_t first, uint64_t n)
{
	return range_apply(m, first, n, false);
}

static uint64_t next_bit(const struct region_map *m, uint64_t from, bool want_set)
{
	uint64_t nwords = m->nbits / 64 + (m->nbits % 64 != 0);
	uint64_t wi = from >> 6;

	if (from >= m->nbits)
		return m->nbits;
	for (; wi < nwords; wi++) {
		uint64_t w = want_set ? m->words[wi] : ~m->words[wi];
		if (wi == from >> 6)
			w &= ~((UINT64_C(1) << (from & 63)) - 1);
		if (w) {
			uint64_t i = wi * 64 + (uint64_t)__builtin_ctzll(w);
			return i < m->nbits ? i : m->nbits;
		}
	}
	return m->nbits;
}

uint64_t region_map_next_set(const struct region_map *m, uint64_t from)
{
	return next_bit(m, from, true);
}

uint64_t region_map_next_clear(const struct region_map *m, uint64_t from)
{
	return next_bit(m, from, false);
}
