/*
 * u-region: region arithmetic and the region map against lib/region.h.
 *
 * The map is checked differentially: every operation is applied to the map
 * and to a plain byte-per-bit reference, and results, bits and the
 * population count are compared.  The random sequence is seeded from
 * $VOLMIG_TEST_SEED (or the clock) and the seed is printed so that a failing
 * run can be repeated.
 */
#include "region.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tap.h"

#define OPS_PER_SIZE 4000

/* The checks of maps too large to allocate expect -ENOMEM; under
 * AddressSanitizer a huge calloc aborts unless it may return NULL.  The
 * sanitizer runtime looks this hook up by name, so it cannot be static;
 * other builds never call it. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "allocator_may_return_null=1";
}

static uint64_t rng_state;

/* splitmix64: small, seedable, good enough to pick operations */
static uint64_t rnd(void)
{
	uint64_t z = (rng_state += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static uint64_t rnd_below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

static uint64_t seed_init(void)
{
	const char *env = getenv("VOLMIG_TEST_SEED");
	uint64_t seed;

	if (env != NULL && *env != '\0')
		seed = strtoull(env, NULL, 0);
	else
		seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	printf("# seed %" PRIu64 " (set VOLMIG_TEST_SEED to repeat)\n", seed);
	rng_state = seed;
	return seed;
}

static void span_is(uint64_t off, uint64_t len, unsigned shift, uint64_t want_first,
		    uint64_t want_n)
{
	uint64_t first = 0xdead, n = 0xbeef;

	region_span(off, len, shift, &first, &n);
	ok(n == want_n && (want_n == 0 || first == want_first),
	   "region_span(%" PRIu64 ", %" PRIu64 ", %u) = [%" PRIu64 ", +%" PRIu64 ") (got [%" PRIu64
	   ", +%" PRIu64 "))",
	   off, len, shift, want_first, want_n, first, n);
}

static void test_span(void)
{
	const uint64_t R = 4096;
	const uint64_t top = UINT64_MAX >> 12; /* last region with shift 12 */

	span_is(0, 0, 12, 0, 0);
	span_is(12345, 0, 12, 0, 0);
	span_is(UINT64_MAX, 0, 12, 0, 0);
	span_is(0, 1, 12, 0, 1);
	span_is(0, R, 12, 0, 1);
	span_is(0, R + 1, 12, 0, 2);
	span_is(R - 1, 1, 12, 0, 1);
	span_is(R - 1, 2, 12, 0, 2);
	span_is(R, R, 12, 1, 1);
	span_is(R, 3 * R, 12, 1, 3);
	span_is(R + 1, 3 * R, 12, 1, 4);
	span_is(10 * R - 1, R + 2, 12, 9, 3);
	span_is(UINT64_C(5) << 30, UINT64_C(1) << 30, 30, 5, 1);
	span_is((UINT64_C(5) << 30) - 1, 2, 30, 4, 2);
	/* near the top of the offset space */
	span_is(UINT64_MAX, 1, 12, top, 1);
	span_is(UINT64_MAX - R + 1, R, 12, top, 1);
	span_is(UINT64_MAX - R, 2, 12, top - 1, 2);
	/* overflowing ranges are clamped at the last byte */
	span_is(UINT64_MAX, UINT64_MAX, 12, top, 1);
	span_is(UINT64_MAX - R, UINT64_MAX, 12, top - 1, 2);
	span_is(R, UINT64_MAX, 12, 1, top);
	span_is(0, UINT64_MAX, 12, 0, top + 1);
}

static void test_count(void)
{
	ok(region_count(0, 12) == 0, "region_count(0) = 0");
	ok(region_count(1, 12) == 1, "region_count(1) = 1");
	ok(region_count(4095, 12) == 1, "region_count(4095) = 1");
	ok(region_count(4096, 12) == 1, "region_count(4096) = 1");
	ok(region_count(4097, 12) == 2, "region_count(4097) = 2");
	ok(region_count(UINT64_C(1) << 40, 30) == 1024, "region_count(1 TiB, 1 GiB) = 1024");
	ok(region_count((UINT64_C(1) << 40) + 1, 30) == 1025, "region_count(1 TiB + 1, 1 GiB) = 1025");
	ok(region_count(UINT64_MAX, 12) == (UINT64_MAX >> 12) + 1,
	   "region_count(UINT64_MAX, 12) = 2^52");
}

static void valid_is(uint64_t v, bool want, unsigned want_shift)
{
	unsigned shift = 999;
	bool r = region_size_valid(v, &shift);

	if (want)
		ok(r && shift == want_shift, "region_size_valid(%" PRIu64 ") true, shift %u (got %d, %u)",
		   v, want_shift, r, shift);
	else
		ok(!r, "region_size_valid(%" PRIu64 ") false", v);
}

static void test_size_valid(void)
{
	valid_is(4096, true, 12);
	valid_is(8192, true, 13);
	valid_is(UINT64_C(1) << 20, true, 20);
	valid_is(UINT64_C(1) << 30, true, 30);
	valid_is(UINT64_C(2) << 30, false, 0);
	valid_is(UINT64_C(1) << 63, false, 0);
	valid_is(0, false, 0);
	valid_is(1, false, 0);
	valid_is(2048, false, 0);
	valid_is(3000, false, 0);
	valid_is(4095, false, 0);
	valid_is(4097, false, 0);
	valid_is(6144, false, 0);
	valid_is((UINT64_C(1) << 30) - 1, false, 0);
	valid_is(UINT64_MAX, false, 0);
}

/* The reference: one byte per bit. */
struct ref {
	uint64_t nbits;
	uint8_t *bits;
};

static uint64_t ref_count(const struct ref *r)
{
	uint64_t n = 0;

	for (uint64_t i = 0; i < r->nbits; i++)
		n += r->bits[i];
	return n;
}

static uint64_t ref_apply(struct ref *r, uint64_t first, uint64_t n, uint8_t v)
{
	uint64_t changed = 0;

	for (uint64_t i = first; i < r->nbits && i - first < n; i++) {
		changed += r->bits[i] != v;
		r->bits[i] = v;
	}
	return changed;
}

static uint64_t ref_next(const struct ref *r, uint64_t from, uint8_t v)
{
	for (uint64_t i = from; i < r->nbits; i++)
		if (r->bits[i] == v)
			return i;
	return r->nbits;
}

/* A position to operate on: mostly inside, sometimes at the edges. */
static uint64_t pick_pos(uint64_t nbits)
{
	switch (rnd_below(8)) {
	case 0:
		return 0;
	case 1:
		return nbits - 1;
	case 2:
		return (rnd_below((nbits + 63) / 64)) * 64; /* word start */
	case 3:
		return nbits + rnd_below(3); /* past the end (ranges, next_*) */
	default:
		return rnd_below(nbits);
	}
}

static uint64_t pick_len(uint64_t nbits)
{
	switch (rnd_below(6)) {
	case 0:
		return 0;
	case 1:
		return UINT64_MAX - rnd_below(2); /* clamped */
	case 2:
		return 64 + rnd_below(3) - 1;
	default:
		return rnd_below(nbits + 2);
	}
}

/* Run random operations on a map of nbits and on the reference; one check
 * that they never disagreed, naming the first operation that did. */
static void differential(uint64_t nbits)
{
	struct region_map m;
	struct ref r = { .nbits = nbits };
	uint64_t bad_op = 0, op;
	char what[160] = "";
	int rc;

	rc = region_map_init(&m, nbits);
	r.bits = calloc(nbits ? nbits : 1, 1);
	ok(rc == 0 && m.nbits == nbits && m.count == 0, "init %" PRIu64 " bits", nbits);
	if (rc != 0 || r.bits == NULL) {
		free(r.bits);
		return;
	}
	for (op = 1; op <= OPS_PER_SIZE && bad_op == 0; op++) {
		uint64_t i = pick_pos(nbits), n = pick_len(nbits), got, want;
		unsigned kind = (unsigned)rnd_below(8);

		switch (kind) {
		case 0: /* set one bit */
			if (i >= nbits)
				i = nbits - 1;
			got = (uint64_t)region_map_set(&m, i);
			want = !r.bits[i];
			r.bits[i] = 1;
			snprintf(what, sizeof(what), "set(%" PRIu64 ")", i);
			break;
		case 1: /* clear one bit */
			if (i >= nbits)
				i = nbits - 1;
			got = (uint64_t)region_map_clear(&m, i);
			want = r.bits[i];
			r.bits[i] = 0;
			snprintf(what, sizeof(what), "clear(%" PRIu64 ")", i);
			break;
		case 2:
			if (i >= nbits)
				i = nbits - 1;
			got = region_map_test(&m, i);
			want = r.bits[i];
			snprintf(what, sizeof(what), "test(%" PRIu64 ")", i);
			break;
		case 3:
			got = region_map_set_range(&m, i, n);
			want = ref_apply(&r, i, n, 1);
			snprintf(what, sizeof(what), "set_range(%" PRIu64 ", %" PRIu64 ")", i, n);
			break;
		case 4:
			got = region_map_clear_range(&m, i, n);
			want = ref_apply(&r, i, n, 0);
			snprintf(what, sizeof(what), "clear_range(%" PRIu64 ", %" PRIu64 ")", i, n);
			break;
		case 5:
			got = region_map_next_set(&m, i);
			want = ref_next(&r, i, 1);
			snprintf(what, sizeof(what), "next_set(%" PRIu64 ")", i);
			break;
		case 6:
			got = region_map_next_clear(&m, i);
			want = ref_next(&r, i, 0);
			snprintf(what, sizeof(what), "next_clear(%" PRIu64 ")", i);
			break;
		default: /* a whole-map check of every bit */
			got = 0;
			want = 0;
			for (uint64_t b = 0; b < nbits; b++)
				if (region_map_test(&m, b) != (bool)r.bits[b]) {
					got = b + 1;
					break;
				}
			snprintf(what, sizeof(what), "every bit (first differing + 1)");
			break;
		}
		if (got != want) {
			bad_op = op;
			snprintf(what + strlen(what), sizeof(what) - strlen(what),
				 ": got %" PRIu64 ", want %" PRIu64, got, want);
		} else if (m.count != ref_count(&r)) {
			bad_op = op;
			snprintf(what + strlen(what), sizeof(what) - strlen(what),
				 ": count %" PRIu64 ", want %" PRIu64, m.count, ref_count(&r));
		}
	}
	ok(bad_op == 0, "nbits %" PRIu64 ": %d random operations agree with the reference%s%s",
	   nbits, OPS_PER_SIZE, bad_op ? "; first difference: " : "", bad_op ? what : "");
	region_map_release(&m);
	ok(m.words == NULL && m.nbits == 0 && m.count == 0, "release empties the map");
	free(r.bits);
}

/* Hand-made cases across word boundaries, independent of the generator. */
static void test_map_edges(void)
{
	struct region_map m;
	uint64_t n;

	if (region_map_init(&m, 200) != 0) {
		ok(0, "init 200 bits");
		return;
	}
	ok(region_map_next_set(&m, 0) == 200, "empty map: next_set = nbits");
	ok(region_map_next_clear(&m, 0) == 0, "empty map: next_clear(0) = 0");
	ok(region_map_next_clear(&m, 200) == 200, "next_clear(nbits) = nbits");
	n = region_map_set_range(&m, 60, 10);
	ok(n == 10 && m.count == 10, "set_range(60, 10) across words 0/1 changes 10 (got %" PRIu64 ")", n);
	n = region_map_set_range(&m, 55, 20);
	ok(n == 10 && m.count == 20, "set_range(55, 20) over it changes only the 10 new bits (got %" PRIu64 ")",
	   n);
	ok(region_map_test(&m, 55) && region_map_test(&m, 74) && !region_map_test(&m, 54) &&
		   !region_map_test(&m, 75),
	   "bits 55..74 set, 54 and 75 clear");
	ok(region_map_next_set(&m, 0) == 55, "next_set(0) = 55");
	ok(region_map_next_set(&m, 64) == 64, "next_set(64) = 64");
	ok(region_map_next_clear(&m, 55) == 75, "next_clear(55) = 75");
	n = region_map_clear_range(&m, 63, 2);
	ok(n == 2 && m.count == 18, "clear_range(63, 2) across the boundary changes 2 (got %" PRIu64 ")", n);
	ok(region_map_next_clear(&m, 55) == 63, "next_clear(55) = 63");
	n = region_map_set_range(&m, 0, UINT64_MAX);
	ok(n == 182 && m.count == 200, "set_range(0, max) clamps to nbits (changed %" PRIu64 ")", n);
	ok(region_map_next_clear(&m, 0) == 200, "full map: next_clear = nbits");
	n = region_map_set_range(&m, 200, 5);
	ok(n == 0 && m.count == 200, "set_range past the end changes nothing");
	n = region_map_clear_range(&m, 190, 100);
	ok(n == 10 && m.count == 190, "clear_range(190, 100) clamps (changed %" PRIu64 ")", n);
	ok(region_map_next_set(&m, 190) == 200, "next_set in the cleared tail = nbits");
	ok(region_map_set(&m, 199) == 1 && region_map_set(&m, 199) == 0 && m.count == 191,
	   "set returns 1 then 0");
	ok(region_map_clear(&m, 199) == 1 && region_map_clear(&m, 199) == 0 && m.count == 190,
	   "clear returns 1 then 0");
	region_map_release(&m);
	region_map_release(&m); /* release is safe on an empty map */

	/* maps that cannot be allocated: -ENOMEM and an empty map, never a
	 * map that claims more bits than it holds */
	n = 0;
	for (uint64_t nbits = UINT64_MAX - 62; nbits != 0; nbits++) {
		int rc = region_map_init(&m, nbits);

		if (rc == 0) {
			n++;
			region_map_release(&m);
		} else if (m.nbits != 0 || m.count != 0) {
			n++;
		}
	}
	ok(n == 0, "init of UINT64_MAX - 62 .. UINT64_MAX bits: -ENOMEM, map empty (%" PRIu64 " of 63 not)", n);
	{
		int rc = region_map_init(&m, UINT64_C(1) << 62);

		ok(rc == -ENOMEM && m.nbits == 0 && m.count == 0, "init of 2^62 bits: -ENOMEM, map empty (rc %d)", rc);
		if (rc == 0)
			region_map_release(&m);
	}
	ok(region_map_init(&m, 0) == 0 && m.nbits == 0, "init 0 bits");
	ok(region_map_next_set(&m, 0) == 0 && region_map_next_clear(&m, 0) == 0,
	   "0-bit map: next_* = 0");
	ok(region_map_set_range(&m, 0, 10) == 0 && m.count == 0, "0-bit map: set_range changes nothing");
	region_map_release(&m);
}

int main(void)
{
	static const uint64_t sizes[] = { 1, 2, 63, 64, 65, 127, 128, 129, 1000, 4096 };

	seed_init();
	test_span();
	test_count();
	test_size_valid();
	test_map_edges();
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		differential(sizes[i]);
	return tap_done();
}
