/*
 * state: Berkeley DB store of a session.  See state.h for the contents and
 * the environment flags; this file is the only user of libdb.
 */
#include "state.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

#define STATE_DB_FILE "volmig.db"
#define STATE_TXN_RETRIES 100

int state_errno(int dbrc)
{
	if (dbrc == 0)
		return 0;
	if (dbrc > 0)
		return -dbrc;
	switch (dbrc) {
	case DB_NOTFOUND:
	case DB_KEYEMPTY:
		return -ENOENT;
	case DB_LOCK_DEADLOCK:
	case DB_LOCK_NOTGRANTED:
		return -EDEADLK;
	case DB_VERSION_MISMATCH:
	case DB_OLD_VERSION:
		return -EPROTONOSUPPORT;
	default:
		return -EIO;
	}
}

static void state_errcall(const DB_ENV *env, const char *prefix, const char *msg)
{
	(void)env;
	(void)prefix;
	log_debug("berkeley db: %s", msg);
}

static int db_open_one(struct state *st, DB **out, const char *name, unsigned flags)
{
	DB *db = NULL;
	int rc;

	rc = db_create(&db, st->env, 0);
	if (rc != 0)
		return state_errno(rc);
	rc = db->open(db, NULL, STATE_DB_FILE, name, DB_BTREE,
		      DB_AUTO_COMMIT | ((flags & STATE_CREATE) ? DB_CREATE : 0), 0600);
	if (rc != 0) {
		db->close(db, 0);
		if (rc == ENOENT)
			return -ENOENT;
		/* a file that is not a Berkeley DB btree, or damaged pages */
		if (rc < 0 || rc == EINVAL)
			return -EBADMSG;
		return -rc;
	}
	*out = db;
	return 0;
}

int state_open(struct state *st, const char *dir, unsigned flags)
{
	char path[4096];
	struct stat sb;
	int rc;

	memset(st, 0, sizeof(*st));
	if (!(flags & STATE_CREATE)) {
		/* do not let Berkeley DB create an empty environment for us */
		if (snprintf(path, sizeof(path), "%s/%s", dir, STATE_DB_FILE) >= (int)sizeof(path))
			return -ENAMETOOLONG;
		if (stat(path, &sb) < 0)
			return -errno;
	}
	rc = db_env_create(&st->env, 0);
	if (rc != 0) {
		st->env = NULL;
		return state_errno(rc);
	}
	st->env->set_errcall(st->env, state_errcall);
	st->env->set_cachesize(st->env, 0, 4 << 20, 1);
	st->env->set_lg_max(st->env, STATE_LOG_FILE_BYTES);
	st->env->set_lk_detect(st->env, DB_LOCK_DEFAULT);
	st->env->log_set_config(st->env, DB_LOG_AUTO_REMOVE, 1);
	rc = st->env->open(st->env, dir,
			   DB_CREATE | DB_INIT_TXN | DB_INIT_LOG | DB_INIT_LOCK |
				   DB_INIT_MPOOL | DB_REGISTER | DB_RECOVER | DB_THREAD,
			   0600);
	if (rc != 0) {
		rc = (rc == DB_RUNRECOVERY || rc < 0) ? -EBADMSG : -rc;
		goto fail;
	}
	rc = db_open_one(st, &st->meta, "meta", flags);
	/* volmig.db is there (checked above) but has no "meta": not ours */
	if (rc == -ENOENT && !(flags & STATE_CREATE))
		rc = -EBADMSG;
	if (rc < 0)
		goto fail;
	rc = db_open_one(st, &st->dirty, "dirty", flags);
	if (rc < 0)
		goto fail;
	rc = db_open_one(st, &st->ingest, "ingest", flags);
	if (rc < 0)
		goto fail;
	return 0;

fail:
	state_close(st);
	return rc;
}

int state_remove(const char *dir)
{
	char path[4200];
	struct dirent *de;
	DIR *d;
	int rc = 0;

	d = opendir(dir);
	if (d == NULL)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d)) != NULL) {
		const char *n = de->d_name;

		if (strcmp(n, STATE_DB_FILE) != 0 && strncmp(n, "__db.", 5) != 0 &&
		    strncmp(n, "log.", 4) != 0)
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", dir, n) >= (int)sizeof(path)) {
			rc = -ENAMETOOLONG;
			break;
		}
		if (unlink(path) < 0 && errno != ENOENT) {
			rc = -errno;
			break;
		}
	}
	closedir(d);
	return rc;
}

int state_close(struct state *st)
{
	int first = 0, rc;
	DB **dbs[] = { &st->ingest, &st->dirty, &st->meta };

	for (size_t i = 0; i < sizeof(dbs) / sizeof(dbs[0]); i++) {
		if (*dbs[i] == NULL)
			continue;
		rc = (*dbs[i])->close(*dbs[i], 0);
		if (rc != 0 && first == 0)
			first = state_errno(rc);
		*dbs[i] = NULL;
	}
	if (st->env != NULL) {
		rc = st->env->close(st->env, 0);
		if (rc != 0 && first == 0)
			first = state_errno(rc);
		st->env = NULL;
	}
	return first;
}

int state_txn(struct state *st, int (*fn)(struct state *, DB_TXN *, void *), void *arg)
{
	int rc = -EDEADLK;

	for (int attempt = 0; attempt < STATE_TXN_RETRIES && rc == -EDEADLK; attempt++) {
		DB_TXN *txn = NULL;

		rc = state_errno(st->env->txn_begin(st->env, NULL, &txn, 0));
		if (rc < 0)
			return rc;
		rc = fn(st, txn, arg);
		if (rc < 0) {
			txn->abort(txn);
			continue;
		}
		rc = state_errno(txn->commit(txn, 0));
	}
	return rc;
}

static int kv_get(DB *db, DB_TXN *txn, const void *k, size_t klen, void *v, size_t vcap,
		  size_t *vlen)
{
	DBT key = { .data = (void *)k, .size = (u_int32_t)klen };
	DBT val = { .data = v, .ulen = (u_int32_t)vcap, .flags = DB_DBT_USERMEM };
	int rc;

	rc = db->get(db, txn, &key, &val, 0);
	if (rc == DB_BUFFER_SMALL)
		return -EBADMSG;
	if (rc != 0)
		return state_errno(rc);
	*vlen = val.size;
	return 0;
}

static int kv_put(DB *db, DB_TXN *txn, const void *k, size_t klen, const void *v, size_t vlen)
{
	DBT key = { .data = (void *)k, .size = (u_int32_t)klen };
	DBT val = { .data = (void *)v, .size = (u_int32_t)vlen };

	return state_errno(db->put(db, txn, &key, &val, 0));
}

int state_sess_get(struct state *st, DB_TXN *txn, struct sess *s)
{
	DBT key = { .data = "session", .size = 7 };
	DBT val = { .flags = DB_DBT_MALLOC };
	int rc;

	rc = st->meta->get(st->meta, txn, &key, &val, 0);
	if (rc != 0)
		return state_errno(rc);
	rc = sess_decode(val.data, val.size, s);
	free(val.data);
	return rc;
}

int state_sess_put(struct state *st, DB_TXN *txn, const struct sess *s)
{
	uint8_t *buf;
	size_t len;
	int rc;

	rc = sess_encode(s, &buf, &len);
	if (rc < 0)
		return rc;
	rc = kv_put(st->meta, txn, "session", 7, buf, len);
	free(buf);
	return rc;
}

static void le64_put(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t le64_get(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* A fixed-length record of meta: 1 and its bytes in v when present, 0 when
 * absent (v zeroed: a record never written reads as zero), -EBADMSG when
 * of another length, other -errno. */
static int meta_get_fixed(struct state *st, DB_TXN *txn, const char *key, size_t klen, uint8_t *v,
			  size_t len)
{
	size_t vlen;
	int rc;

	memset(v, 0, len);
	rc = kv_get(st->meta, txn, key, klen, v, len, &vlen);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	return vlen == len ? 1 : -EBADMSG;
}

int state_progress_get(struct state *st, DB_TXN *txn, uint32_t pair, struct state_progress *p)
{
	char key[32];
	uint8_t v[32];
	int rc, klen = snprintf(key, sizeof(key), "pair/%u", pair);

	memset(p, 0, sizeof(*p));
	rc = meta_get_fixed(st, txn, key, (size_t)klen, v, sizeof(v));
	if (rc <= 0)
		return rc;
	p->cursor = le64_get(v);
	p->bytes_copied = le64_get(v + 8);
	p->bytes_recopied = le64_get(v + 16);
	p->hwm = le64_get(v + 24);
	return 0;
}

int state_progress_put(struct state *st, DB_TXN *txn, uint32_t pair, const struct state_progress *p)
{
	char key[32];
	uint8_t v[32];
	int klen = snprintf(key, sizeof(key), "pair/%u", pair);

	le64_put(v, p->cursor);
	le64_put(v + 8, p->bytes_copied);
	le64_put(v + 16, p->bytes_recopied);
	le64_put(v + 24, p->hwm);
	return kv_put(st->meta, txn, key, (size_t)klen, v, sizeof(v));
}

int state_totals_get(struct state *st, DB_TXN *txn, struct state_totals *t)
{
	uint8_t v[8];
	int rc;

	memset(t, 0, sizeof(*t));
	rc = meta_get_fixed(st, txn, "totals", 6, v, sizeof(v));
	if (rc <= 0)
		return rc;
	t->resumes = le64_get(v);
	return 0;
}

int state_totals_put(struct state *st, DB_TXN *txn, const struct state_totals *t)
{
	uint8_t v[8];

	le64_put(v, t->resumes);
	return kv_put(st->meta, txn, "totals", 6, v, sizeof(v));
}

int state_mirror_errors_get(struct state *st, DB_TXN *txn, uint32_t pair, uint64_t *n)
{
	char key[32];
	uint8_t v[8];
	int rc, klen = snprintf(key, sizeof(key), "mirror/%u", pair);

	*n = 0;
	rc = meta_get_fixed(st, txn, key, (size_t)klen, v, sizeof(v));
	if (rc <= 0)
		return rc;
	*n = le64_get(v);
	return 0;
}

int state_mirror_errors_put(struct state *st, DB_TXN *txn, uint32_t pair, uint64_t n)
{
	char key[32];
	uint8_t v[8];
	int klen = snprintf(key, sizeof(key), "mirror/%u", pair);

	le64_put(v, n);
	return kv_put(st->meta, txn, key, (size_t)klen, v, sizeof(v));
}

int state_control_get(struct state *st, DB_TXN *txn, struct state_control *c)
{
	uint8_t v[64];
	size_t vlen;
	int rc;

	memset(c, 0, sizeof(*c));
	rc = kv_get(st->meta, txn, "control", 7, v, sizeof(v), &vlen);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	if (vlen != sizeof(v) && vlen != 48) /* 48: before the stop fields */
		return -EBADMSG;
	c->paused = (uint32_t)le64_get(v);
	c->pending = (uint32_t)le64_get(v + 8);
	c->pending_pid = (int32_t)(uint32_t)le64_get(v + 16);
	c->pending_start = le64_get(v + 24) >> 8;
	c->recovered = (uint32_t)(le64_get(v + 24) & 0xf);
	c->recovered_state = (uint32_t)((le64_get(v + 24) >> 4) & 0xf);
	c->rate = le64_get(v + 32);
	c->recovered_at = le64_get(v + 40);
	if (vlen == sizeof(v)) {
		c->stopped = (uint32_t)le64_get(v + 48);
		c->stopped_size = le64_get(v + 56);
	}
	return 0;
}

int state_control_put(struct state *st, DB_TXN *txn, const struct state_control *c)
{
	uint8_t v[64];

	le64_put(v, c->paused);
	le64_put(v + 8, c->pending);
	le64_put(v + 16, (uint32_t)c->pending_pid);
	le64_put(v + 24, (c->pending_start << 8) | ((uint64_t)(c->recovered_state & 0xf) << 4) |
				 (c->recovered & 0xf));
	le64_put(v + 32, c->rate);
	le64_put(v + 40, c->recovered_at);
	le64_put(v + 48, c->stopped);
	le64_put(v + 56, c->stopped_size);
	return kv_put(st->meta, txn, "control", 7, v, sizeof(v));
}

/* Big-endian (pair, region) so that the btree orders by pair, then region. */
static void dirty_key(uint8_t k[12], uint32_t pair, uint64_t region)
{
	for (int i = 0; i < 4; i++)
		k[i] = (uint8_t)(pair >> (24 - 8 * i));
	for (int i = 0; i < 8; i++)
		k[4 + i] = (uint8_t)(region >> (56 - 8 * i));
}

int state_dirty_add(struct state *st, DB_TXN *txn, uint32_t pair, uint64_t region)
{
	uint8_t k[12];

	dirty_key(k, pair, region);
	return kv_put(st->dirty, txn, k, sizeof(k), "", 0);
}

int state_dirty_del(struct state *st, DB_TXN *txn, uint32_t pair, uint64_t region)
{
	DBT key;
	uint8_t k[12];
	int rc;

	dirty_key(k, pair, region);
	key = (DBT){ .data = k, .size = sizeof(k) };
	rc = st->dirty->del(st->dirty, txn, &key, 0);
	return rc == DB_NOTFOUND ? 0 : state_errno(rc);
}

/* Walk the dirty regions of one pair, calling fn (unless NULL) for each
 * and, with del, removing it. */
static int dirty_walk(struct state *st, DB_TXN *txn, uint32_t pair,
		      void (*fn)(uint64_t region, void *arg), void *arg, bool del)
{
	DBC *cur = NULL;
	uint8_t k[12];
	DBT key, val;
	int rc, dbrc;

	rc = state_errno(st->dirty->cursor(st->dirty, txn, &cur, 0));
	if (rc < 0)
		return rc;
	dirty_key(k, pair, 0);
	key = (DBT){ .data = k, .size = sizeof(k), .ulen = sizeof(k), .flags = DB_DBT_USERMEM };
	val = (DBT){ .flags = DB_DBT_PARTIAL };
	for (dbrc = cur->get(cur, &key, &val, DB_SET_RANGE); dbrc == 0;
	     dbrc = cur->get(cur, &key, &val, DB_NEXT)) {
		uint32_t p;
		uint64_t region = 0;

		if (key.size != sizeof(k)) {
			rc = -EBADMSG;
			goto out;
		}
		p = (uint32_t)k[0] << 24 | (uint32_t)k[1] << 16 | (uint32_t)k[2] << 8 | k[3];
		if (p != pair)
			break;
		for (int i = 0; i < 8; i++)
			region = region << 8 | k[4 + i];
		if (fn != NULL)
			fn(region, arg);
		if (del && (dbrc = cur->del(cur, 0)) != 0)
			break;
	}
	if (dbrc != 0 && dbrc != DB_NOTFOUND)
		rc = state_errno(dbrc);
out:
	cur->close(cur);
	return rc;
}

struct dirty_load_arg {
	struct region_map *m;
	uint64_t beyond;
};

static void dirty_load_one(uint64_t region, void *arg)
{
	struct dirty_load_arg *a = arg;

	if (a->m != NULL && region < a->m->nbits)
		region_map_set(a->m, region);
	else
		a->beyond++;
}

int state_dirty_load(struct state *st, DB_TXN *txn, uint32_t pair, struct region_map *m,
		     uint64_t *beyond)
{
	struct dirty_load_arg a = { .m = m };
	int rc;

	rc = dirty_walk(st, txn, pair, dirty_load_one, &a, false);
	if (beyond != NULL)
		*beyond = a.beyond;
	return rc;
}

int state_dirty_count(struct state *st, DB_TXN *txn, uint32_t pair, uint64_t *n)
{
	struct dirty_load_arg a = { .m = NULL };
	int rc;

	rc = dirty_walk(st, txn, pair, dirty_load_one, &a, false);
	*n = a.beyond;
	return rc;
}

int state_dirty_clear(struct state *st, DB_TXN *txn, uint32_t pair)
{
	return dirty_walk(st, txn, pair, NULL, NULL, true);
}

int state_ingest_get2(struct state *st, DB_TXN *txn, const char *segment, uint64_t *off,
		      uint64_t *lost)
{
	uint8_t v[16];
	size_t vlen;
	int rc;

	rc = kv_get(st->ingest, txn, segment, strlen(segment), v, sizeof(v), &vlen);
	if (rc < 0)
		return rc;
	if (vlen != 8 && vlen != 16)
		return -EBADMSG;
	*off = le64_get(v);
	*lost = vlen == 16 ? le64_get(v + 8) : 0;
	return 0;
}

int state_ingest_get(struct state *st, DB_TXN *txn, const char *segment, uint64_t *off)
{
	uint64_t lost;

	return state_ingest_get2(st, txn, segment, off, &lost);
}

struct ingest_get_arg {
	const char *segment;
	uint64_t off, lost;
};

static int ingest_get_txn(struct state *st, DB_TXN *txn, void *arg)
{
	struct ingest_get_arg *a = arg;

	return state_ingest_get2(st, txn, a->segment, &a->off, &a->lost);
}

int state_ingest_get_txn(struct state *st, const char *segment, uint64_t *off, uint64_t *lost)
{
	struct ingest_get_arg a = { .segment = segment };
	int rc = state_txn(st, ingest_get_txn, &a);

	*off = a.off;
	*lost = a.lost;
	return rc;
}

int state_ingest_put2(struct state *st, DB_TXN *txn, const char *segment, uint64_t off,
		      uint64_t lost)
{
	uint8_t v[16];

	le64_put(v, off);
	le64_put(v + 8, lost);
	return kv_put(st->ingest, txn, segment, strlen(segment), v, sizeof(v));
}

int state_ingest_put(struct state *st, DB_TXN *txn, const char *segment, uint64_t off)
{
	return state_ingest_put2(st, txn, segment, off, 0);
}

int state_ingest_del(struct state *st, DB_TXN *txn, const char *segment)
{
	DBT key = { .data = (void *)segment, .size = (u_int32_t)strlen(segment) };
	int rc;

	rc = st->ingest->del(st->ingest, txn, &key, 0);
	return rc == DB_NOTFOUND ? 0 : state_errno(rc);
}

int state_log_checkpoint(struct state *st, unsigned kbytes)
{
	return state_errno(st->env->txn_checkpoint(st->env, kbytes, 0, 0));
}
