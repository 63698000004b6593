/*
 * sess: the session record -- what `volmig setup` decided -- and its
 * versioned, checksummed byte encoding as stored in Berkeley DB.
 *
 * The record holds the format version, the session state, the region size,
 * and each pair's paths, sizes and identities (device and inode for files,
 * rdev for block devices) so that a pair whose volume was swapped or resized
 * since setup is refused.  The decoder is the one place that trusts no byte
 * (it is fuzzed): it accepts exactly a well-formed record of this version.
 * Copier-side only; no locking (the caller owns the struct).
 */
#ifndef VOLMIG_SESS_H
#define VOLMIG_SESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#define SESS_VERSION 1
#define SESS_MAX_PAIRS 64
#define SESS_PATH_MAX 4095

enum sess_state {
	SESS_SETUP = 0,
	SESS_COPYING = 1,
	SESS_SYNCED = 2,
	SESS_SWITCHED = 3,
	SESS_COMMITTED = 4,
	SESS_ABORTED = 5,
	SESS_NSTATES
};

enum sess_flags {
	SESS_DURABILITY_PROCESS = 1 << 0, /* dirty-log group commit per process */
};

enum sess_kind {
	SESS_KIND_FILE = 1,
	SESS_KIND_BLOCK = 2,
};

/* What a volume is: same identity means same volume. */
struct sess_ident {
	uint32_t kind;  /* enum sess_kind */
	uint64_t dev;   /* st_dev for files */
	uint64_t ino;   /* st_ino for files */
	uint64_t rdev;  /* st_rdev for block devices */
};

struct sess_pair {
	char *source;
	char *target;
	uint64_t size;        /* source size at setup, bytes */
	uint64_t target_size; /* target size at setup, bytes */
	uint64_t reserve;     /* room for growth of the source, bytes */
	struct sess_ident source_id;
	struct sess_ident target_id;
};

struct sess {
	uint32_t version;
	uint32_t state;        /* enum sess_state */
	uint32_t region_shift; /* region size is 1 << region_shift */
	uint32_t flags;        /* enum sess_flags */
	uint64_t id;           /* random, names this session */
	uint64_t created;      /* seconds since the epoch */
	uint32_t npairs;
	struct sess_pair *pairs;
};

/*
 * Bytes of a pair the session tracks: the source's size at setup plus the
 * room reserved for its growth (setup --reserve; file sources only).  A
 * source that grows past it stops the migration.
 */
static inline uint64_t sess_capacity(const struct sess_pair *p)
{
	return p->reserve > UINT64_MAX - p->size ? UINT64_MAX : p->size + p->reserve;
}

/* Name of a state ("setup", "copying", ...), or "unknown". */
const char *sess_state_name(uint32_t state);

/* Identity of a stat result; 0, or -EINVAL when neither file nor block device. */
int sess_ident_from_stat(const struct stat *st, struct sess_ident *id);
/* Nonzero when two identities name the same volume. */
int sess_ident_equal(const struct sess_ident *a, const struct sess_ident *b);

/*
 * Append a pair (paths copied).  0, -E2BIG past SESS_MAX_PAIRS,
 * -ENAMETOOLONG for a path over SESS_PATH_MAX, or -ENOMEM.
 */
int sess_add_pair(struct sess *s, const char *source, const char *target);

/* Free the pairs and paths; the struct is zeroed. */
void sess_release(struct sess *s);

/*
 * Encode into a new buffer (*out, *len; free() it).  0 or -ENOMEM.
 */
int sess_encode(const struct sess *s, uint8_t **out, size_t *len);

/*
 * Decode buf[0..len) into *s, which must be zeroed or released.
 * Returns 0; -EBADMSG for anything malformed (bad magic, length, checksum,
 * state, region size, pair count, path); -EPROTONOSUPPORT when the record is
 * intact but of another format version (s->version is set, nothing else);
 * -ENOMEM.  On failure *s holds no allocations.
 */
int sess_decode(const uint8_t *buf, size_t len, struct sess *s);

#endif
