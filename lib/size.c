/*
 * size: byte counts and durations from and to text.
 */
#include "size.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int digits_parse(const char **sp, uint64_t *out)
{
	const char *s = *sp;
	uint64_t v = 0;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	for (; *s >= '0' && *s <= '9'; s++) {
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*sp = s;
	*out = v;
	return 0;
}

int uint_parse(const char *s, uint64_t *out)
{
	uint64_t v;
	int rc;

	rc = digits_parse(&s, &v);
	if (rc < 0)
		return rc;
	if (*s != '\0')
		return -EINVAL;
	*out = v;
	return 0;
}

int size_parse(const char *s, uint64_t *out)
{
	static const char units[] = "kmgtp";
	unsigned shift = 0;
	uint64_t v;
	int rc;

	rc = digits_parse(&s, &v);
	if (rc < 0)
		return rc;
	if (*s != '\0') {
		const char *u = strchr(units, *s | 0x20);
		if (u == NULL || *s == '\0')
			return -EINVAL;
		shift = 10 * (unsigned)(u - units + 1);
		s++;
		if (s[0] == 'i' && s[1] == 'B')
			s += 2;
		else if (s[0] == 'B')
			s++;
	} else {
		/* a bare number is bytes */
	}
	if (*s != '\0')
		return -EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*out = v << shift;
	return 0;
}

int duration_parse(const char *s, uint64_t *out_us)
{
	uint64_t whole, frac = 0, scale = 1000000;
	unsigned frac_digits = 0;
	int rc;

	rc = digits_parse(&s, &whole);
	if (rc < 0)
		return rc;
	if (*s == '.') {
		s++;
		if (*s < '0' || *s > '9')
			return -EINVAL;
		for (; *s >= '0' && *s <= '9'; s++) {
			if (frac_digits < 6) {
				frac = frac * 10 + (unsigned)(*s - '0');
				frac_digits++;
			}
		}
		while (frac_digits < 6) {
			frac *= 10;
			frac_digits++;
		}
	}
	if (strcmp(s, "ms") == 0) {
		scale = 1000;
		frac /= 1000;
	} else if (strcmp(s, "s") != 0 && *s != '\0') {
		return -EINVAL;
	}
	if (whole > (UINT64_MAX - frac) / scale)
		return -ERANGE;
	*out_us = whole * scale + frac;
	return 0;
}

char *size_format(uint64_t bytes, char *buf, size_t len)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	double v = (double)bytes;
	unsigned i = 0;

	if (len == 0)
		return buf;
	if (bytes < 1024) {
		snprintf(buf, len, "%llu B", (unsigned long long)bytes);
		return buf;
	}
	while (v >= 1024.0 && i + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024.0;
		i++;
	}
	snprintf(buf, len, "%.1f %s", v, units[i]);
	return buf;
}
