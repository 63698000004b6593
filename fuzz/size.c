/*
 * fuzz target "size": the parsers behind every numeric command-line flag
 * (lib/size.h: size_parse for --region-size and --rate, duration_parse for
 * --checkpoint-interval, uint_parse for --threads), region_size_valid on
 * what size_parse accepts (--region-size), and size_format.
 *
 * Input: the text to parse (up to the first NUL).  Its first 8 bytes,
 * little-endian, are also the byte count given to size_format, into a
 * buffer whose length is the input's length modulo 41.
 *
 * Contract asserted: each parser against a reference parser written here
 * from the grammar in size.h, with exact (128-bit) arithmetic: the same
 * verdict and the same value.  size_parse: digits, then optionally one of
 * k M G T P (any case, powers of 1024), then optionally "iB" or "B";
 * duration_parse: digits, optionally '.' and digits, optionally "s" or
 * "ms", in microseconds (fraction digits past the microsecond truncated);
 * uint_parse: digits.  Anything else is -EINVAL, a value past UINT64_MAX
 * -ERANGE (text that is both malformed and too large may get either), and
 * size_parse and uint_parse leave *out untouched on failure.  size_format
 * always NUL-terminates within the buffer, never writes past it, and with
 * room prints "N B" below 1 KiB, else the value in the largest binary unit
 * that keeps it >= 1, to one decimal, within rounding.
 */
#define FUZZ_NAME "size"
#include "fuzz.h"

#include "region.h"
#include "size.h"

typedef unsigned __int128 u128;

#define MAX_TEXT 256
#define UNSET UINT64_C(0xa5a5a5a5a5a5a5a5)

struct verdict {
	bool malformed, overflow;
	uint64_t value;
};

static bool digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Digits at *s (at least one, else malformed), exactly, saturating past
 * UINT64_MAX with overflow set. */
static u128 ref_digits(const char **s, struct verdict *v)
{
	u128 x = 0;

	if (!digit(**s))
		v->malformed = true;
	for (; digit(**s); (*s)++) {
		x = x * 10 + (unsigned)(**s - '0');
		if (x > UINT64_MAX) {
			v->overflow = true;
			x = (u128)UINT64_MAX + 1;
		}
	}
	return x;
}

static struct verdict ref_size(const char *s)
{
	static const char units[] = "kKmMgGtTpP";
	struct verdict v = { 0 };
	u128 x = ref_digits(&s, &v);
	unsigned shift = 0;

	if (*s != '\0') {
		const char *u = strchr(units, *s);

		if (u == NULL) {
			v.malformed = true;
		} else {
			shift = 10 * (unsigned)((u - units) / 2 + 1);
			s++;
			if (s[0] == 'i' && s[1] == 'B')
				s += 2;
			else if (s[0] == 'B')
				s++;
			if (*s != '\0')
				v.malformed = true;
		}
	}
	x <<= shift;
	if (x > UINT64_MAX)
		v.overflow = true;
	v.value = (uint64_t)x;
	return v;
}

static struct verdict ref_duration(const char *s)
{
	struct verdict v = { 0 };
	u128 whole = ref_digits(&s, &v), us;
	uint64_t frac = 0; /* the fraction in microseconds, truncated */
	unsigned nfrac = 0;

	if (*s == '.') {
		s++;
		if (!digit(*s))
			v.malformed = true;
		for (; digit(*s); s++) {
			if (nfrac < 6) {
				frac = frac * 10 + (unsigned)(*s - '0');
				nfrac++;
			}
		}
		for (; nfrac < 6; nfrac++)
			frac *= 10;
	}
	if (strcmp(s, "ms") == 0)
		us = whole * 1000 + frac / 1000;
	else if (*s == '\0' || strcmp(s, "s") == 0)
		us = whole * 1000000 + frac;
	else {
		v.malformed = true;
		us = 0;
	}
	if (us > UINT64_MAX)
		v.overflow = true;
	v.value = (uint64_t)us;
	return v;
}

static struct verdict ref_uint(const char *s)
{
	struct verdict v = { 0 };
	u128 x = ref_digits(&s, &v);

	if (*s != '\0')
		v.malformed = true;
	v.value = (uint64_t)x;
	return v;
}

/* rc and out (from an *out that started as UNSET) against the reference. */
static int judge(const char *what, const char *text, struct verdict want, int rc, uint64_t out,
		 bool untouched_on_failure)
{
	if (want.malformed && want.overflow)
		FUZZ_CHECK(rc == -EINVAL || rc == -ERANGE,
			   "%s(\"%s\") = %d: malformed and too large", what, text, rc);
	else if (want.malformed)
		FUZZ_CHECK(rc == -EINVAL, "%s(\"%s\") = %d: malformed", what, text, rc);
	else if (want.overflow)
		FUZZ_CHECK(rc == -ERANGE, "%s(\"%s\") = %d: past UINT64_MAX", what, text, rc);
	else
		FUZZ_CHECK(rc == 0 && out == want.value, "%s(\"%s\") = %d, %llu; want %llu", what,
			   text, rc, (unsigned long long)out, (unsigned long long)want.value);
	if (rc != 0 && untouched_on_failure)
		FUZZ_CHECK(out == UNSET, "%s(\"%s\") failed but wrote %llu", what, text,
			   (unsigned long long)out);
	return rc == 0;
}

static void check_format(uint64_t bytes, size_t len)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	char buf[48], unit[8];
	double x;
	int used = 0;
	unsigned i;

	memset(buf, 0xee, sizeof(buf));
	FUZZ_CHECK(size_format(bytes, buf, len) == buf, "size_format does not return buf");
	for (size_t k = len; k < sizeof(buf); k++)
		FUZZ_CHECK((unsigned char)buf[k] == 0xee,
			   "size_format(%llu) into %zu bytes wrote byte %zu",
			   (unsigned long long)bytes, len, k);
	if (len == 0)
		return;
	FUZZ_CHECK(memchr(buf, '\0', len) != NULL, "size_format(%llu) into %zu bytes: no NUL",
		   (unsigned long long)bytes, len);
	if (len < 40)
		return; /* truncated: only the bounds above are promised */
	if (bytes < 1024) {
		char want[32];

		snprintf(want, sizeof(want), "%llu B", (unsigned long long)bytes);
		FUZZ_CHECK(strcmp(buf, want) == 0, "size_format(%llu) = \"%s\"",
			   (unsigned long long)bytes, buf);
		return;
	}
	FUZZ_CHECK(sscanf(buf, "%lf %7s%n", &x, unit, &used) == 2 && buf[used] == '\0',
		   "size_format(%llu) = \"%s\" is not \"NUMBER UNIT\"", (unsigned long long)bytes,
		   buf);
	for (i = 1; i < sizeof(units) / sizeof(units[0]); i++)
		if (strcmp(unit, units[i]) == 0)
			break;
	FUZZ_CHECK(i < sizeof(units) / sizeof(units[0]), "size_format(%llu) = \"%s\": unit",
		   (unsigned long long)bytes, buf);
	{
		long double scale = 1.0L, err;

		for (unsigned k = 0; k < i; k++)
			scale *= 1024.0L;
		err = (long double)x * scale - (long double)bytes;
		if (err < 0)
			err = -err;

		FUZZ_CHECK(x >= 1.0 && x <= 1024.0 && err <= 0.0501L * scale + bytes * 1e-12L,
			   "size_format(%llu) = \"%s\" is off by %Lg", (unsigned long long)bytes,
			   buf, err);
	}
}

static int fuzz_one(const uint8_t *data, size_t len)
{
	char text[MAX_TEXT + 1];
	size_t n = len < MAX_TEXT ? len : MAX_TEXT;
	uint64_t out;
	unsigned shift;
	int ok = 0, rc;

	memcpy(text, data, n);
	text[n] = '\0';

	out = UNSET;
	rc = size_parse(text, &out);
	ok |= judge("size_parse", text, ref_size(text), rc, out, true);
	if (rc == 0) {
		bool want = out >= 4096 && out <= (UINT64_C(1) << 30) && (out & (out - 1)) == 0;

		FUZZ_CHECK(region_size_valid(out, &shift) == want &&
				   (!want || (UINT64_C(1) << shift) == out),
			   "--region-size %s: region_size_valid disagrees", text);
	}
	out = UNSET;
	rc = duration_parse(text, &out);
	ok |= judge("duration_parse", text, ref_duration(text), rc, out, false);
	out = UNSET;
	rc = uint_parse(text, &out);
	ok |= judge("uint_parse", text, ref_uint(text), rc, out, true);

	check_format(fz_le(data, len < 8 ? len : 8), len % 41);
	check_format(fz_le(data, len < 8 ? len : 8), 40);
	return ok;
}
