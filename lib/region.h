/*
 * region: a map of regions, one bit each, and the arithmetic that turns byte
 * ranges into region ranges.
 *
 * A volume of size S with region size R (a power of two) has
 * ceil(S / R) regions; region i covers bytes [i*R, min((i+1)*R, S)).
 * The map is a plain bitmap with a maintained population count.  It is not
 * thread-safe: its owner serialises access (the copier's dispatcher, or a
 * test).  The shim never uses it; it uses the control block's atomics.
 */
#ifndef VOLMIG_REGION_H
#define VOLMIG_REGION_H

#include <stdbool.h>
#include <stdint.h>

struct region_map {
	uint64_t nbits;   /* regions in the map */
	uint64_t count;   /* bits set */
	uint64_t *words;  /* ceil(nbits / 64) words */
};

/* Regions of a volume of `size` bytes with regions of 1 << shift bytes. */
static inline uint64_t region_count(uint64_t size, unsigned shift)
{
	return (size >> shift) + ((size & ((UINT64_C(1) << shift) - 1)) != 0);
}

/*
 * The regions [*first, *first + *n) touched by bytes [off, off + len).
 * len 0 touches nothing (*n = 0).  Overflowing ranges are clamped to the
 * last representable byte.
 */
void region_span(uint64_t off, uint64_t len, unsigned shift,
		 uint64_t *first, uint64_t *n);

/* True when v is a power of two from 4 KiB to 1 GiB; stores log2 in *shift. */
bool region_size_valid(uint64_t v, unsigned *shift);

/* Allocate a cleared map of nbits.  0, or -ENOMEM (map left empty). */
int region_map_init(struct region_map *m, uint64_t nbits);
/* Free the bits; the map is empty afterwards and may be init'ed again. */
void region_map_release(struct region_map *m);

/* Set/clear bit i (i < nbits).  Return 1 if the bit changed, else 0. */
int region_map_set(struct region_map *m, uint64_t i);
int region_map_clear(struct region_map *m, uint64_t i);
bool region_map_test(const struct region_map *m, uint64_t i);

/* Set/clear bits [first, first + n), clamped to nbits; return how many changed. */
uint64_t region_map_set_range(struct region_map *m, uint64_t first, uint64_t n);
uint64_t region_map_clear_range(struct region_map *m, uint64_t first, uint64_t n);

/* First set (or clear) bit at or after `from`; nbits when there is none. */
uint64_t region_map_next_set(const struct region_map *m, uint64_t from);
uint64_t region_map_next_clear(const struct region_map *m, uint64_t from);

#endif
