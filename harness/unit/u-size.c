/*
 * u-size: size_parse, uint_parse, duration_parse and size_format against the
 * contract in lib/size.h.  Pure functions: no scratch directory needed.
 */
#include "size.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "tap.h"

#define KIB UINT64_C(1024)
#define SENTINEL UINT64_C(0x5a5a5a5a5a5a5a5a)

/* One accepted input: returns 0 and stores want. */
static void size_good(const char *s, uint64_t want)
{
	uint64_t v = SENTINEL;
	int rc = size_parse(s, &v);

	ok(rc == 0 && v == want, "size_parse(\"%s\") = %" PRIu64 " (rc %d, got %" PRIu64 ")",
	   s, want, rc, v);
}

/* One refused input: returns err and leaves *out untouched. */
static void size_bad(const char *s, int err)
{
	uint64_t v = SENTINEL;
	int rc = size_parse(s, &v);

	ok(rc == err && v == SENTINEL, "size_parse(\"%s\") refused with %d (rc %d, out %s)",
	   s, err, rc, v == SENTINEL ? "untouched" : "changed");
}

static void uint_good(const char *s, uint64_t want)
{
	uint64_t v = SENTINEL;
	int rc = uint_parse(s, &v);

	ok(rc == 0 && v == want, "uint_parse(\"%s\") = %" PRIu64 " (rc %d, got %" PRIu64 ")",
	   s, want, rc, v);
}

static void uint_bad(const char *s, int err)
{
	uint64_t v = SENTINEL;
	int rc = uint_parse(s, &v);

	ok(rc == err && v == SENTINEL, "uint_parse(\"%s\") refused with %d (rc %d, out %s)",
	   s, err, rc, v == SENTINEL ? "untouched" : "changed");
}

static void dur_good(const char *s, uint64_t want_us)
{
	uint64_t v = SENTINEL;
	int rc = duration_parse(s, &v);

	ok(rc == 0 && v == want_us, "duration_parse(\"%s\") = %" PRIu64 " us (rc %d, got %" PRIu64 ")",
	   s, want_us, rc, v);
}

static void dur_bad(const char *s, int err)
{
	uint64_t v = SENTINEL;
	int rc = duration_parse(s, &v);

	ok(rc == err, "duration_parse(\"%s\") refused with %d (rc %d)", s, err, rc);
}

static void format_is(uint64_t bytes, const char *want)
{
	char buf[64];
	char *r;

	memset(buf, 'x', sizeof(buf));
	r = size_format(bytes, buf, sizeof(buf));
	ok(r == buf && strcmp(buf, want) == 0, "size_format(%" PRIu64 ") = \"%s\" (got \"%.*s\")",
	   bytes, want, (int)strnlen(buf, sizeof(buf)), buf);
}

static void test_size_suffixes(void)
{
	static const struct {
		char lower, upper;
		unsigned shift;
	} units[] = {
		{ 'k', 'K', 10 }, { 'm', 'M', 20 }, { 'g', 'G', 30 }, { 't', 'T', 40 }, { 'p', 'P', 50 },
	};
	static const char *const tails[] = { "", "iB", "B" };

	for (size_t u = 0; u < sizeof(units) / sizeof(units[0]); u++) {
		for (size_t t = 0; t < sizeof(tails) / sizeof(tails[0]); t++) {
			char s[32];

			snprintf(s, sizeof(s), "3%c%s", units[u].lower, tails[t]);
			size_good(s, UINT64_C(3) << units[u].shift);
			snprintf(s, sizeof(s), "3%c%s", units[u].upper, tails[t]);
			size_good(s, UINT64_C(3) << units[u].shift);
		}
	}
}

static void test_size_plain(void)
{
	size_good("0", 0);
	size_good("1", 1);
	size_good("4096", 4096);
	size_good("0k", 0);
	size_good("007", 7);
	size_good("18446744073709551615", UINT64_MAX);
	/* the largest value each suffix can carry */
	size_good("16383P", UINT64_C(16383) << 50);
	size_good("17179869183G", UINT64_C(17179869183) << 30);
	size_good("1024KiB", 1024 * KIB);
}

static void test_size_refused(void)
{
	size_bad("", -EINVAL);
	size_bad("-1", -EINVAL);
	size_bad("+1", -EINVAL);
	size_bad(" 1", -EINVAL);
	size_bad("1 ", -EINVAL);
	size_bad("1 M", -EINVAL);
	size_bad("1.5M", -EINVAL);
	size_bad("1X", -EINVAL);
	size_bad("1MiBx", -EINVAL);
	size_bad("1MBB", -EINVAL);
	size_bad("1MM", -EINVAL);
	size_bad("1iB", -EINVAL);
	size_bad("M", -EINVAL);
	size_bad("KiB", -EINVAL);
	size_bad("0x10", -EINVAL);
	size_bad("20000000000000000000", -ERANGE);
	size_bad("18446744073709551616", -ERANGE);
	size_bad("17179869184G", -ERANGE);
	size_bad("16384P", -ERANGE);
	size_bad("18446744073709551615k", -ERANGE);

	/* "E" is not one of the documented suffixes (k M G T P): 16E (2^64)
	 * must be refused; -EINVAL (not a suffix) or -ERANGE are both fair */
	{
		uint64_t v = SENTINEL;
		int rc = size_parse("16E", &v);

		ok((rc == -EINVAL || rc == -ERANGE) && v == SENTINEL,
		   "size_parse(\"16E\") refused (rc %d)", rc);
	}
}

static void test_uint(void)
{
	uint_good("0", 0);
	uint_good("42", 42);
	uint_good("18446744073709551615", UINT64_MAX);
	uint_bad("18446744073709551616", -ERANGE);
	uint_bad("99999999999999999999999", -ERANGE);
	uint_bad("", -EINVAL);
	uint_bad("-1", -EINVAL);
	uint_bad("+1", -EINVAL);
	uint_bad(" 1", -EINVAL);
	uint_bad("1 ", -EINVAL);
	uint_bad("1k", -EINVAL);
	uint_bad("1.0", -EINVAL);
	uint_bad("x", -EINVAL);
}

static void test_duration(void)
{
	dur_good("1", 1000000);
	dur_good("0", 0);
	dur_good("0s", 0);
	dur_good("0.25", 250000);
	dur_good("250ms", 250000);
	dur_good("0.5ms", 500);
	dur_good("1.5ms", 1500);
	dur_good("5s", 5000000);
	dur_good("2.5s", 2500000);
	dur_good("0.000001", 1);
	dur_good("120", 120000000);
	dur_bad("", -EINVAL);
	dur_bad(".5", -EINVAL);
	dur_bad("1.", -EINVAL);
	dur_bad("x", -EINVAL);
	dur_bad("1h", -EINVAL);
	dur_bad("1m", -EINVAL);
	dur_bad("-1", -EINVAL);
	dur_bad(" 1", -EINVAL);
	dur_bad("1 s", -EINVAL);
	dur_bad("1sx", -EINVAL);
	dur_bad("1mss", -EINVAL);
	dur_bad("18446744073709551615", -ERANGE);
	dur_bad("99999999999999999999999", -ERANGE);
}

static void test_format(void)
{
	char small[4];

	format_is(0, "0 B");
	format_is(1, "1 B");
	format_is(512, "512 B");
	format_is(1023, "1023 B");
	format_is(1024, "1.0 KiB");
	format_is(1536, "1.5 KiB");
	format_is(1536 * KIB, "1.5 MiB");
	format_is(UINT64_C(1) << 30, "1.0 GiB");
	format_is(UINT64_C(2) << 30, "2.0 GiB");
	format_is(UINT64_C(1) << 40, "1.0 TiB");
	format_is(UINT64_MAX, "16.0 EiB");

	/* a short buffer is still NUL-terminated */
	memset(small, 'x', sizeof(small));
	size_format(UINT64_C(1) << 30, small, sizeof(small));
	ok(memchr(small, '\0', sizeof(small)) != NULL, "size_format NUL-terminates a 4-byte buffer");
	ok(strncmp(small, "1.0", 3) == 0, "size_format truncates to the buffer (got \"%.3s\")", small);
}

int main(void)
{
	test_size_suffixes();
	test_size_plain();
	test_size_refused();
	test_uint();
	test_duration();
	test_format();
	return tap_done();
}
