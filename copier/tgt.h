/*
 * tgt: what the copier does to a target besides writing a region's bytes --
 * zeroing a range without growing a file target, growing a file target to
 * its source's length, cutting it back to that length -- shared by the
 * engine and commit.  A file target follows its source's length: bytes past
 * the source's end are never written to it, and it is cut back (under the
 * target lock, lib/ctl.h) when the source shrank.
 */
#ifndef VOLMIG_TGT_H
#define VOLMIG_TGT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Make [off, off + len) of the target fd read as zeros: a file is punched
 * (its length kept; if it cannot be punched, zeros are written only below
 * its end), a block device zeroed.  buf (bufsz bytes) is scratch.  0 or
 * -errno.
 */
int tgt_zero(int fd, bool file, uint64_t off, uint64_t len, void *buf, size_t bufsz);

/* A file target at least upto bytes long (one zero byte written at upto - 1,
 * which the caller knows the source holds as zero).  0 or -errno. */
int tgt_extend(int fd, uint64_t upto);

/*
 * Cut the file target tgt back to the length of its source src when it is
 * longer.  Takes the target lock exclusive on lock_fd unless locked is set
 * (the caller holds it), and cuts only if may_cut(arg) says so once it is
 * held (false once the session is committed: the target is then the
 * volume; NULL: always).  1 when cut, 0 when nothing was to do, -errno.
 */
int tgt_trim(int lock_fd, bool locked, int src, int tgt, bool (*may_cut)(void *), void *arg);

#endif
