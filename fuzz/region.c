/*
 * fuzz target "region": the region map of lib/region.h against a plain
 * byte-per-region reference (a differential test), and the region
 * arithmetic (region_span, region_count, region_size_valid) against exact
 * 128-bit arithmetic.
 *
 * Input: u16 nbits (0..8191), then a program of operations, each an opcode
 * byte and its operands (indexes as u16 taken modulo nbits; range starts,
 * lengths and offsets as fz_num, which reaches 0, small values and the top
 * of the 64-bit range):
 *
 *   set i, clear i, test i            single bits (i < nbits, as required)
 *   set_range first n, clear_range    any first and n: clamped to nbits
 *   next_set from, next_clear from    any from
 *   reinit nbits                      release and init a new map
 *   span off len shift                region_span, shift 0..63
 *   count size shift                  region_count
 *   size_valid v                      region_size_valid (any v, or 2^k +- 1)
 *   compare                           the whole map against the reference
 *
 * Contract asserted: every return value (bit changed or not, how many bits
 * a range changed, the next set or clear bit, nbits when there is none)
 * equals the reference's, the population count always equals the
 * reference's, and after the program every bit tests as in the reference
 * and walking next_set from 0 visits exactly the reference's set bits.  Any
 * difference aborts.  region_span covers exactly the regions holding the
 * first and the last byte (clamped at UINT64_MAX), region_count is
 * ceil(size / 2^shift), region_size_valid accepts exactly the powers of two
 * from 4 KiB to 1 GiB and gives their log2.
 */
#define FUZZ_NAME "region"
#include "fuzz.h"

#include "region.h"

#define MAX_NBITS 8192u
#define MAX_OPS 4096

typedef unsigned __int128 u128;

struct model {
	struct region_map m;
	uint8_t ref[MAX_NBITS];
	uint64_t ref_count;
};

static void model_init(struct model *md, uint64_t nbits)
{
	int rc = region_map_init(&md->m, nbits);

	FUZZ_CHECK(rc == 0, "init of %llu bits: %d", (unsigned long long)nbits, rc);
	FUZZ_CHECK(md->m.nbits == nbits && md->m.count == 0, "a new map has %llu bits, %llu set",
		   (unsigned long long)md->m.nbits, (unsigned long long)md->m.count);
	memset(md->ref, 0, sizeof(md->ref));
	md->ref_count = 0;
}

static uint64_t ref_range(struct model *md, uint64_t first, uint64_t n, uint8_t v)
{
	uint64_t nbits = md->m.nbits, end, changed = 0;

	if (first >= nbits)
		return 0;
	end = (u128)first + n > nbits ? nbits : first + n;
	for (uint64_t i = first; i < end; i++) {
		changed += md->ref[i] != v;
		md->ref[i] = v;
	}
	if (v)
		md->ref_count += changed;
	else
		md->ref_count -= changed;
	return changed;
}

static uint64_t ref_next(const struct model *md, uint64_t from, uint8_t v)
{
	uint64_t nbits = md->m.nbits;
	const uint8_t *hit;

	if (from >= nbits)
		return nbits;
	hit = memchr(md->ref + from, v, nbits - from);
	return hit ? (uint64_t)(hit - md->ref) : nbits;
}

static void compare_all(const struct model *md)
{
	uint64_t nbits = md->m.nbits, i, prev = 0, seen = 0;

	FUZZ_CHECK(md->m.count == md->ref_count, "count %llu, reference %llu",
		   (unsigned long long)md->m.count, (unsigned long long)md->ref_count);
	for (i = 0; i < nbits; i++)
		FUZZ_CHECK(region_map_test(&md->m, i) == (md->ref[i] != 0),
			   "bit %llu of %llu is %d, reference %d", (unsigned long long)i,
			   (unsigned long long)nbits, region_map_test(&md->m, i), md->ref[i]);
	for (i = region_map_next_set(&md->m, 0); i < nbits;
	     i = region_map_next_set(&md->m, i + 1)) {
		FUZZ_CHECK(md->ref[i] && ref_next(md, prev, 1) == i,
			   "next_set walk reached %llu; the reference's next set bit is %llu",
			   (unsigned long long)i, (unsigned long long)ref_next(md, prev, 1));
		prev = i + 1;
		seen++;
	}
	FUZZ_CHECK(i == nbits && seen == md->ref_count,
		   "next_set walk ended at %llu after %llu bits; %llu are set",
		   (unsigned long long)i, (unsigned long long)seen,
		   (unsigned long long)md->ref_count);
}

static void check_span(uint64_t off, uint64_t len, unsigned shift)
{
	uint64_t first = 0xa5a5, n = 0xa5a5;

	region_span(off, len, shift, &first, &n);
	FUZZ_CHECK(first == off >> shift, "span(%llu, %llu, %u): first %llu",
		   (unsigned long long)off, (unsigned long long)len, shift,
		   (unsigned long long)first);
	if (len == 0) {
		FUZZ_CHECK(n == 0, "span of 0 bytes: %llu regions", (unsigned long long)n);
		return;
	}
	{
		u128 last = (u128)off + len - 1;

		if (last > UINT64_MAX)
			last = UINT64_MAX;
		FUZZ_CHECK(n >= 1 && ((u128)first + n - 1) << shift <= last &&
				   last < ((u128)first + n) << shift,
			   "span(%llu, %llu, %u) = [%llu, +%llu) misses the last byte's region",
			   (unsigned long long)off, (unsigned long long)len, shift,
			   (unsigned long long)first, (unsigned long long)n);
	}
}

static void check_count(uint64_t size, unsigned shift)
{
	u128 want = ((u128)size + ((u128)1 << shift) - 1) >> shift;

	FUZZ_CHECK(region_count(size, shift) == want, "region_count(%llu, %u) = %llu, want %llu",
		   (unsigned long long)size, shift, (unsigned long long)region_count(size, shift),
		   (unsigned long long)want);
}

static void check_size_valid(uint64_t v)
{
	unsigned shift = 99;
	bool want = v >= 4096 && v <= (UINT64_C(1) << 30) && (v & (v - 1)) == 0;
	bool got = region_size_valid(v, &shift);

	FUZZ_CHECK(got == want, "region_size_valid(%llu) = %d", (unsigned long long)v, got);
	if (got)
		FUZZ_CHECK((UINT64_C(1) << shift) == v, "region_size_valid(%llu): shift %u",
			   (unsigned long long)v, shift);
}

static int fuzz_one(const uint8_t *data, size_t len)
{
	static struct model md;
	struct fz_in in = { .p = data, .len = len };
	uint64_t nbits = fz_take(&in, 2) % MAX_NBITS;
	int ops = 0;

	model_init(&md, nbits);
	while (!in.end && ops++ < MAX_OPS) {
		unsigned op = (unsigned)fz_take(&in, 1) % 13;
		uint64_t a, b, got, want;

		if (in.end)
			break;
		nbits = md.m.nbits;
		switch (op) {
		case 0: /* set */
		case 1: /* clear */
		case 2: /* test */
			a = fz_take(&in, 2);
			if (nbits == 0)
				break;
			a %= nbits;
			want = md.ref[a]; /* test: the bit; clear: changed iff it was set */
			if (op == 0) {
				got = (uint64_t)region_map_set(&md.m, a);
				want = !want; /* changed iff it was clear */
				md.ref_count += want;
				md.ref[a] = 1;
			} else if (op == 1) {
				got = (uint64_t)region_map_clear(&md.m, a);
				md.ref_count -= want;
				md.ref[a] = 0;
			} else {
				got = region_map_test(&md.m, a);
			}
			FUZZ_CHECK(got == want, "op %u on bit %llu returned %llu, reference %llu",
				   op, (unsigned long long)a, (unsigned long long)got,
				   (unsigned long long)want);
			break;
		case 3: /* set_range */
		case 4: /* clear_range */
			a = fz_num(&in);
			b = fz_num(&in);
			got = op == 3 ? region_map_set_range(&md.m, a, b)
				      : region_map_clear_range(&md.m, a, b);
			want = ref_range(&md, a, b, op == 3);
			FUZZ_CHECK(got == want,
				   "%s_range(%llu, %llu) of %llu bits changed %llu, reference %llu",
				   op == 3 ? "set" : "clear", (unsigned long long)a,
				   (unsigned long long)b, (unsigned long long)nbits,
				   (unsigned long long)got, (unsigned long long)want);
			break;
		case 5: /* next_set */
		case 6: /* next_clear */
			a = fz_num(&in);
			got = op == 5 ? region_map_next_set(&md.m, a)
				      : region_map_next_clear(&md.m, a);
			want = ref_next(&md, a, op == 5);
			FUZZ_CHECK(got == want, "next_%s(%llu) of %llu bits = %llu, reference %llu",
				   op == 5 ? "set" : "clear", (unsigned long long)a,
				   (unsigned long long)nbits, (unsigned long long)got,
				   (unsigned long long)want);
			break;
		case 7: /* reinit */
			compare_all(&md);
			region_map_release(&md.m);
			FUZZ_CHECK(md.m.words == NULL && md.m.nbits == 0 && md.m.count == 0,
				   "a released map is not empty");
			model_init(&md, fz_take(&in, 2) % MAX_NBITS);
			break;
		case 8:
			a = fz_num(&in);
			b = fz_num(&in);
			check_span(a, b, (unsigned)fz_take(&in, 1) % 64);
			break;
		case 9:
			a = fz_num(&in);
			check_count(a, (unsigned)fz_take(&in, 1) % 64);
			break;
		case 10:
			check_size_valid(fz_num(&in));
			break;
		case 11:
			a = fz_take(&in, 1);
			check_size_valid((UINT64_C(1) << (a % 64)) + (fz_take(&in, 1) % 3) - 1);
			break;
		default:
			compare_all(&md);
			break;
		}
		FUZZ_CHECK(md.m.count == md.ref_count, "after op %u: count %llu, reference %llu",
			   op, (unsigned long long)md.m.count, (unsigned long long)md.ref_count);
	}
	compare_all(&md);
	region_map_release(&md.m);
	return nbits > 0;
}
