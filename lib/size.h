/*
 * size: parsing and printing of byte counts and durations for the command
 * line.  Pure functions, no allocation, safe from any thread.
 */
#ifndef VOLMIG_SIZE_H
#define VOLMIG_SIZE_H

#include <stddef.h>
#include <stdint.h>

/*
 * Parse a byte count: decimal digits, optionally followed by one suffix
 * k, M, G, T, P (any case, powers of 1024), itself optionally followed by
 * "iB" or "B".  Leading/trailing blanks, signs, empty strings, fractions and
 * values above UINT64_MAX are refused.
 *
 * Returns 0 and stores the value in *out, or -EINVAL (malformed) or
 * -ERANGE (overflow); *out is untouched on failure.
 */
int size_parse(const char *s, uint64_t *out);

/*
 * Parse a duration in seconds: a decimal number with an optional fraction
 * ("0.25", "5") and an optional "s" or "ms" unit.  Returns 0 and stores
 * microseconds in *out_us, or -EINVAL / -ERANGE.  Zero is allowed.
 */
int duration_parse(const char *s, uint64_t *out_us);

/*
 * Print a byte count for people: "512 B", "1.5 MiB", "2.0 GiB".  Always
 * NUL-terminates; returns buf.
 */
char *size_format(uint64_t bytes, char *buf, size_t len);

/* Parse a decimal unsigned integer with no suffix (thread counts and the
 * like); same errors as size_parse. */
int uint_parse(const char *s, uint64_t *out);

#endif
