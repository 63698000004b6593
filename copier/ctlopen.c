/*
 * ctlopen: the control block as volmig commands see it.
 *
 * A command that needs the block takes the attach lock (STATE/ctl.lock).
 * If it is alone (exclusive lock granted), it builds a new block from
 * durable state, every region DIRTY that is at or past its pair's cursor or
 * in the durable dirty set, then holds the lock shared.  If processes are
 * attached, it joins their block after checking it belongs to this session;
 * the copier then clears what a dead copier left (CIP, RACED), sets DIRTY
 * from durable state and takes back the in-flight counts of dead writers.
 * A rebuild carries over the failed target writes the old block counted
 * (durable, see carry_mirror_errors).
 * Either way it then waits for writes that shim processes made before the
 * block existed (they hold byte 1 of the lock file, see ctl.h), so nothing
 * is copied while an untracked write is in flight.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "ctl.h"
#include "log.h"
#include "region.h"

#define UNTRACKED_WAIT_MS 30000 /* longest wait for writes made before the block */

struct durable_dirty {
	const struct sess *s;
	struct state_progress prog[SESS_MAX_PAIRS];
	struct region_map dirty[SESS_MAX_PAIRS];
	uint64_t mirror_errors[SESS_MAX_PAIRS]; /* failed target writes */
};

static int durable_txn(struct state *st, DB_TXN *txn, void *arg)
{
	struct durable_dirty *d = arg;
	int rc = 0;

	for (uint32_t i = 0; i < d->s->npairs && rc == 0; i++) {
		region_map_clear_range(&d->dirty[i], 0, d->dirty[i].nbits);
		rc = state_progress_get(st, txn, i, &d->prog[i]);
		if (rc == 0)
			rc = state_dirty_load(st, txn, i, &d->dirty[i], NULL);
		if (rc == 0)
			rc = state_mirror_errors_get(st, txn, i, &d->mirror_errors[i]);
	}
	return rc;
}

static void durable_free(struct durable_dirty *d)
{
	if (d == NULL)
		return;
	for (uint32_t i = 0; i < d->s->npairs; i++)
		region_map_release(&d->dirty[i]);
	free(d);
}

/* Each pair's cursor, durable dirty set and failed target writes. */
static int durable_load(struct state *st, const struct sess *s, struct durable_dirty **out)
{
	struct durable_dirty *d;
	int rc = 0;

	*out = NULL;
	d = calloc(1, sizeof(*d));
	if (d == NULL)
		return -ENOMEM;
	d->s = s;
	for (uint32_t i = 0; i < s->npairs && rc == 0; i++)
		rc = region_map_init(&d->dirty[i],
				     region_count(sess_capacity(&s->pairs[i]), s->region_shift));
	if (rc == 0)
		rc = state_txn(st, durable_txn, d);
	if (rc < 0) {
		durable_free(d);
		return rc;
	}
	*out = d;
	return 0;
}

static int mirror_put_txn(struct state *st, DB_TXN *txn, void *arg)
{
	const struct durable_dirty *d = arg;
	int rc = 0;

	for (uint32_t i = 0; i < d->s->npairs && rc == 0; i++)
		rc = state_mirror_errors_put(st, txn, i, d->mirror_errors[i]);
	return rc;
}

static bool matches(const struct ctl *c, const struct sess *s);

/*
 * The failed target writes the shim counted in the block about to be
 * replaced (no process is attached): taken over into durable state, so a
 * rebuild does not set status's mirror_errors back to 0.  Only a block that
 * validates and belongs to this session is read; these are counters for
 * the operator, nothing that keeps data safe depends on them.
 */
static int carry_mirror_errors(const char *path, struct state *st, struct durable_dirty *d)
{
	struct ctl old;
	bool more = false;

	if (ctl_attach(&old, path) < 0)
		return 0;
	if (matches(&old, d->s)) {
		for (uint32_t i = 0; i < d->s->npairs; i++) {
			uint64_t n = atomic_load_explicit(&old.hdr->mirror_errors[i],
							  memory_order_relaxed);

			if (n > d->mirror_errors[i]) {
				d->mirror_errors[i] = n;
				more = true;
			}
		}
	}
	ctl_detach(&old);
	return more ? state_txn(st, mirror_put_txn, d) : 0;
}

/*
 * The block about to be replaced, if setup built it, is pristine no more:
 * the rename that replaces it may not reach the disk before the copier
 * copies, and after a power loss the old block would be found again.
 */
static int unpristine_old(const char *path)
{
	struct ctl old;
	int rc;

	if (ctl_attach(&old, path) < 0)
		return 0;
	rc = ctl_unpristine(&old);
	ctl_detach(&old);
	return rc;
}

/* tails: the regions past each cursor are DIRTY already (a new block,
 * ctl_params.dirty_tail) */
static void mark_durable(struct ctl *c, const struct durable_dirty *d, bool tails)
{
	for (uint32_t i = 0; i < d->s->npairs; i++) {
		const struct region_map *m = &d->dirty[i];

		if (!tails && d->prog[i].cursor < m->nbits)
			ctl_mark_dirty_range(c, i, d->prog[i].cursor, m->nbits - 1);
		for (uint64_t r = region_map_next_set(m, 0); r < m->nbits; r = region_map_next_set(m, r + 1))
			ctl_mark_dirty(c, i, r);
	}
}

static int build(const char *dir, struct state *st, const struct sess *s, struct durable_dirty *d,
		 bool pristine, struct ctl *c)
{
	struct ctl_params *cp;
	char path[4200];
	int rc;

	rc = ctl_path(dir, path, sizeof(path));
	if (rc < 0)
		return rc;
	if (!pristine) {
		rc = unpristine_old(path);
		if (rc < 0)
			return rc;
	}
	rc = carry_mirror_errors(path, st, d);
	if (rc < 0)
		return rc;
	cp = calloc(1, sizeof(*cp));
	if (cp == NULL)
		return -ENOMEM;
	cp->session_id = s->id;
	cp->region_shift = s->region_shift;
	cp->npairs = s->npairs;
	cp->flags = s->flags;
	cp->pristine = pristine;
	for (uint32_t i = 0; i < s->npairs; i++) {
		const struct sess_pair *sp = &s->pairs[i];

		cp->sizes[i] = sess_capacity(sp); /* what the shim tracks */
		cp->sources[i] = sp->source;
		cp->targets[i] = sp->target;
		cp->source_ids[i] = (struct ctl_ident){ .kind = sp->source_id.kind,
							 .dev = sp->source_id.dev,
							 .ino = sp->source_id.ino,
							 .rdev = sp->source_id.rdev };
		cp->target_ids[i] = (struct ctl_ident){ .kind = sp->target_id.kind,
							 .dev = sp->target_id.dev,
							 .ino = sp->target_id.ino,
							 .rdev = sp->target_id.rdev };
		if (d->prog[i].cursor < d->dirty[i].nbits)
			cp->dirty_tail[i] = d->dirty[i].nbits - d->prog[i].cursor;
	}
	rc = ctl_create(c, path, cp);
	free(cp);
	if (rc < 0)
		return rc;
	mark_durable(c, d, true);
	for (uint32_t i = 0; i < s->npairs; i++)
		atomic_store_explicit(&c->hdr->mirror_errors[i], d->mirror_errors[i],
				      memory_order_relaxed);
	ctl_publish(c, s->state); /* release: the counts above before ready */
	return 0;
}

/* Does the block c describe session s? */
static bool matches(const struct ctl *c, const struct sess *s)
{
	if (c->hdr->session_id != s->id || c->hdr->region_shift != s->region_shift ||
	    c->hdr->npairs != s->npairs)
		return false;
	for (uint32_t i = 0; i < s->npairs; i++)
		if (c->hdr->pairs[i].size != sess_capacity(&s->pairs[i]))
			return false;
	return true;
}

int session_ctl_open(const char *dir, struct state *st, const struct sess *s, bool copier,
		     struct ctl *c, int *lock_fd)
{
	struct durable_dirty *d = NULL;
	char path[4200];
	int fd = -1, rc;

	memset(c, 0, sizeof(*c));
	*lock_fd = -1;
	rc = durable_load(st, s, &d);
	if (rc < 0)
		goto out;
	rc = ctl_path(dir, path, sizeof(path));
	if (rc < 0)
		goto out;
	fd = ctl_lock_open(dir);
	if (fd < 0) {
		rc = fd;
		goto out;
	}
	rc = ctl_lock_exclusive(fd);
	if (rc == 0) {
		/* nobody attached: a new block from durable state */
		rc = build(dir, st, s, d, false, c);
		if (rc == 0)
			rc = ctl_lock_shared(fd); /* downgrade */
		goto drain;
	}
	if (rc != -EAGAIN)
		goto out;
	rc = ctl_lock_shared(fd);
	if (rc < 0)
		goto out;
	rc = ctl_attach(c, path);
	if (rc < 0) {
		log_err("the control block %s is in use but cannot be used: %s", path, strerror(-rc));
		goto out;
	}
	if (!matches(c, s)) {
		log_err("processes are attached to the control block %s of another session; "
			"stop them first", path);
		ctl_detach(c);
		rc = -EBUSY;
		goto out;
	}
	if (copier) {
		/* a copier that died left CIP/RACED; clear them (the region
		 * stays as dirty as durable state says), then repair */
		for (uint64_t r = 0; r < c->hdr->nregions; r++)
			atomic_fetch_and_explicit(&c->regions[r], ~(uint32_t)(CTL_CIP | CTL_RACED),
						  memory_order_acq_rel);
		mark_durable(c, d, false);
		ctl_repair_dead(c);
		/* a block setup built: copying starts, so no longer pristine */
		rc = ctl_unpristine(c);
		if (rc < 0) {
			report_errno("cannot write the control block", path, rc);
			ctl_detach(c);
			goto out;
		}
	}
drain:
	if (rc == 0) {
		/* writes made before the block existed: wait for them to end
		 * (every later write sees the block and is tracked) */
		rc = ctl_lock_untracked_drain(fd, UNTRACKED_WAIT_MS);
		if (rc == -ETIMEDOUT) {
			log_err("a write made before the control block %s existed has not ended "
				"in %d s; not copying", path, UNTRACKED_WAIT_MS / 1000);
			ctl_detach(c);
			rc = -EBUSY;
		}
	}
out:
	durable_free(d);
	if (rc < 0) {
		if (fd >= 0)
			close(fd);
		return rc;
	}
	*lock_fd = fd;
	return 0;
}

int session_ctl_prepare(const char *dir, struct state *st, const struct sess *s)
{
	struct durable_dirty *d = NULL;
	struct ctl c;
	int fd, rc;

	fd = ctl_lock_open(dir);
	if (fd < 0)
		return fd;
	rc = ctl_lock_exclusive(fd);
	if (rc == -EAGAIN) {
		rc = 0; /* processes are attached: the copier sorts it out */
		goto out;
	}
	if (rc < 0)
		goto out;
	rc = durable_load(st, s, &d);
	if (rc == 0)
		rc = build(dir, st, s, d, true, &c);
	if (rc == 0) {
		/* the header on disk, ready and pristine: a shim alone that
		 * finds the block after a power loss uses it (its region
		 * words are set all DIRTY again then, see ctl_reset) */
		if (msync(c.hdr, sizeof(*c.hdr), MS_SYNC) < 0)
			rc = -errno;
		ctl_detach(&c);
	}
out:
	durable_free(d);
	close(fd); /* lets go of the attach lock */
	return rc;
}
