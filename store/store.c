/* store/store.c — the LMDB environment, named databases, key encodings and typed msgpack
 * records of store/store.h.
 *
 * Records are msgpack maps written with proto_writer and read back with proto_parse_value
 * (the same bounded reader the network uses, so a corrupt record is an error, not a crash).
 * Decoded string views live in arenas the transaction keeps until it ends (or, for *_each,
 * until the callback returns). Readers that need a few small fields of big records (the
 * aggregate: time_s of every generation) decode them "light" instead: the same checks, no
 * tree, no copies, the big strings skipped (see "light records").
 */
#include "store/store.h"

#include "broker/tasks.h"
#include "common/log.h"
#include "common/util.h"
#include "jobs/proto.h"

#include <errno.h>
#include <inttypes.h>
#include <lmdb.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

enum { DB_META, DB_JOBS, DB_PROBLEMS, DB_TASKS, DB_READY, DB_LEASES, DB_GENERATIONS, DB_SCORES,
       DB_STATS, DB_WORKERS, DB_COUNT };
static const char *const db_names[DB_COUNT] = {"meta", "jobs", "problems", "tasks", "ready", "leases",
                                               "generations", "scores", "stats", "workers"};

struct store {
    MDB_env *env;
    int lock_fd;           /* writer.lock, flock'ed exclusively by the one writer (-1 readers) */
    MDB_dbi dbi[DB_COUNT];
    int readonly;
    int nosync;
    int open_txns;
    size_t map_bytes;
    size_t map_max;        /* growth limit in bytes, 0 = unlimited */
    char *dir;
    char last_err[512];
};

struct store_txn {
    store *s;
    MDB_txn *txn;
    int write;
    proto_msg **keep;      /* decoded records whose views are handed out until the txn ends */
    size_t nkeep, capkeep;
    double **arrs;         /* decoded number arrays (score steps) handed out until the txn ends */
    size_t narrs, caparrs;
};

const char *store_strerror(int rc) {
    switch (rc) {
    case STORE_OK: return "ok";
    case STORE_ERR_NOTFOUND: return "not found";
    case STORE_ERR_MAP_FULL: return "map full";
    case STORE_ERR_CORRUPT: return "corrupt record";
    case STORE_ERR_SCHEMA: return "schema version mismatch";
    case STORE_ERR_IO: return "LMDB error";
    case STORE_ERR_READONLY: return "store is read-only";
    case STORE_ERR_DISK_FULL: return "file system full";
    default: return "unknown store error";
    }
}

int store_err_is_full(int rc) { return rc == STORE_ERR_MAP_FULL || rc == STORE_ERR_DISK_FULL; }

const char *store_last_error(const store *s) { return s->last_err; }
size_t store_map_bytes(const store *s) { return s->map_bytes; }
size_t store_map_max(const store *s) { return s->map_max; }
int store_is_readonly(const store *s) { return s->readonly; }
const char *store_dir(const store *s) { return s->dir; }
void store_set_map_max(store *s, size_t max_bytes) { s->map_max = max_bytes; }

size_t store_used_bytes(store *s) {
    MDB_envinfo info;
    MDB_stat st;
    if (mdb_env_info(s->env, &info) != 0 || mdb_env_stat(s->env, &st) != 0) return 0;
    return (size_t)(info.me_last_pgno + 1) * st.ms_psize;
}

static double mib(size_t bytes) { return (double)bytes / (1024.0 * 1024.0); }

/* "limit 2 MiB" / "no map limit" into buf. */
static const char *limit_text(const store *s, char *buf, size_t cap) {
    if (s->map_max) snprintf(buf, cap, "limit %.6g MiB", mib(s->map_max));
    else snprintf(buf, cap, "no map limit");
    return buf;
}

/* LMDB reports a short write of data pages as EIO ("filesystem full?"): call it a full disk
 * when the file system has almost no space left for us, or data.mdb sits at the process's
 * file-size limit; otherwise it is a real I/O error. */
static int eio_means_full(const store *s) {
    struct statvfs vf;
    if (statvfs(s->dir, &vf) == 0 && (unsigned long long)vf.f_bavail * vf.f_frsize < (8ull << 20)) return 1;
    struct rlimit rl;
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/data.mdb", s->dir);
    if (getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && stat(path, &st) == 0 &&
        (unsigned long long)st.st_size + (1ull << 20) >= (unsigned long long)rl.rlim_cur)
        return 1;
    return 0;
}

/* Maps an LMDB code to a STORE_ code, remembering the text of real failures and of a full
 * disk (what is full, the map size and the limit). */
static int mdb_rc(store *s, int rc, const char *what) {
    if (rc == MDB_SUCCESS) return STORE_OK;
    if (rc == MDB_NOTFOUND) return STORE_ERR_NOTFOUND;
    if (rc == MDB_MAP_FULL) return STORE_ERR_MAP_FULL;
    if (rc == ENOSPC || rc == EDQUOT || rc == EFBIG || (rc == EIO && eio_means_full(s))) {
        char lim[48];
        snprintf(s->last_err, sizeof s->last_err,
                 "no space to extend %.300s/data.mdb (%s: %s%s; map %.6g MiB, %.2f MiB used, %s)", s->dir, what,
                 mdb_strerror(rc), rc == EIO ? ", a short write: file system or file-size limit reached" : "",
                 mib(s->map_bytes), mib(store_used_bytes(s)), limit_text(s, lim, sizeof lim));
        return STORE_ERR_DISK_FULL;
    }
    snprintf(s->last_err, sizeof s->last_err, "%s: %s", what, mdb_strerror(rc));
    return STORE_ERR_IO;
}

/* ======================================================================= keys */

static void put_be(uint8_t *p, uint64_t x, int n) {
    for (int i = n - 1; i >= 0; i--) { p[i] = (uint8_t)x; x >>= 8; }
}
static uint64_t get_be(const uint8_t *p, int n) {
    uint64_t x = 0;
    for (int i = 0; i < n; i++) x = (x << 8) | p[i];
    return x;
}

/* ======================================================================= environment */

static int open_dbis(store *s, char *err, size_t errlen) {
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, s->readonly ? MDB_RDONLY : 0, &txn);
    if (rc) return util_err(err, errlen, "store: mdb_txn_begin: %s", mdb_strerror(rc)), STORE_ERR_IO;
    for (int i = 0; i < DB_COUNT; i++) {
        rc = mdb_dbi_open(txn, db_names[i], s->readonly ? 0 : MDB_CREATE, &s->dbi[i]);
        if (rc) {
            mdb_txn_abort(txn);
            if (rc == MDB_NOTFOUND) {
                util_err(err, errlen, "store: database \"%s\" missing (not a thinkfast store?)", db_names[i]);
                return STORE_ERR_NOTFOUND;
            }
            util_err(err, errlen, "store: mdb_dbi_open(%s): %s", db_names[i], mdb_strerror(rc));
            return STORE_ERR_IO;
        }
    }
    MDB_val k = {6, "schema"}, v;
    rc = mdb_get(txn, s->dbi[DB_META], &k, &v);
    if (rc == MDB_SUCCESS) {
        uint32_t ver = v.mv_size == 4 ? (uint32_t)get_be(v.mv_data, 4) : 0;
        if (ver != STORE_SCHEMA_VERSION) {
            mdb_txn_abort(txn);
            util_err(err, errlen, "store: schema version %u, this program needs %u", ver, STORE_SCHEMA_VERSION);
            return STORE_ERR_SCHEMA;
        }
    } else if (rc == MDB_NOTFOUND && !s->readonly) {
        uint8_t b[4];
        put_be(b, STORE_SCHEMA_VERSION, 4);
        v.mv_size = 4; v.mv_data = b;
        rc = mdb_put(txn, s->dbi[DB_META], &k, &v, 0);
        if (rc) { mdb_txn_abort(txn); return util_err(err, errlen, "store: writing schema: %s", mdb_strerror(rc)), STORE_ERR_IO; }
    } else {
        mdb_txn_abort(txn);
        util_err(err, errlen, "store: schema version missing (%s)", mdb_strerror(rc));
        return rc == MDB_NOTFOUND ? STORE_ERR_SCHEMA : STORE_ERR_IO;
    }
    /* commit even a read-only txn: an aborted txn would close the dbi handles it opened */
    rc = mdb_txn_commit(txn);
    if (rc) return util_err(err, errlen, "store: commit: %s", mdb_strerror(rc)), STORE_ERR_IO;
    return STORE_OK;
}

int store_open(const char *dir, int readonly, size_t map_bytes, store **out, char *err, size_t errlen) {
    *out = NULL;
    struct stat st;
    if (readonly) {
        char path[4096];
        snprintf(path, sizeof path, "%s/data.mdb", dir);
        if (stat(path, &st) != 0) {
            util_err(err, errlen, "store: %s: no store here (%s)", dir, strerror(errno));
            return STORE_ERR_NOTFOUND;
        }
    } else if (util_mkdirs(dir, 0755) != 0) {
        util_err(err, errlen, "store: mkdir %s: %s", dir, strerror(errno));
        return STORE_ERR_IO;
    }
    store *s = xcalloc(1, sizeof *s);
    s->readonly = readonly;
    s->lock_fd = -1;
    s->dir = xstrdup(dir);
    if (!readonly) {
        /* One writer: LMDB would happily serialise two writer processes, and two brokers on one
         * store would lease the same tasks twice. An flock dies with its process (kill -9 too). */
        char path[4096];
        snprintf(path, sizeof path, "%s/writer.lock", dir);
        s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (s->lock_fd < 0) {
            util_err(err, errlen, "store: %s: %s", path, strerror(errno));
            free(s->dir);
        free(s);
            return STORE_ERR_IO;
        }
        if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
            char pid[32] = "?";
            ssize_t n = pread(s->lock_fd, pid, sizeof pid - 1, 0);
            if (n > 0) { pid[n] = 0; pid[strcspn(pid, "\n")] = 0; } else snprintf(pid, sizeof pid, "?");
            util_err(err, errlen, "store: %s is already open for writing by another process (pid %s)", dir, pid);
            close(s->lock_fd);
            free(s->dir);
        free(s);
            return STORE_ERR_IO;
        }
        char pid[32];
        int pl = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
        if (ftruncate(s->lock_fd, 0) != 0 || pwrite(s->lock_fd, pid, (size_t)pl, 0) != pl) { /* informational only */ }
    }
    int rc = mdb_env_create(&s->env);
    if (rc) {
        if (s->lock_fd >= 0) close(s->lock_fd);
        free(s->dir);
        free(s);
        return util_err(err, errlen, "store: mdb_env_create: %s", mdb_strerror(rc)), STORE_ERR_IO;
    }
    mdb_env_set_maxdbs(s->env, DB_COUNT + 2);
    if (!map_bytes) map_bytes = STORE_DEFAULT_MAP_BYTES;
    if (!readonly) mdb_env_set_mapsize(s->env, map_bytes);
    /* MDB_NOTLS: read transactions are not tied to threads (tools may use them freely);
     * MDB_NORDAHEAD: random access pattern, readahead only pollutes the page cache. */
    unsigned flags = MDB_NOTLS | MDB_NORDAHEAD | (readonly ? MDB_RDONLY : 0);
    rc = mdb_env_open(s->env, dir, flags, 0644);
    if (rc) {
        util_err(err, errlen, "store: open %s: %s", dir, mdb_strerror(rc));
        mdb_env_close(s->env);
        if (s->lock_fd >= 0) close(s->lock_fd);
        free(s->dir);
        free(s);
        return rc == ENOENT ? STORE_ERR_NOTFOUND : STORE_ERR_IO;
    }
    int dead = 0;
    mdb_reader_check(s->env, &dead);
    if (dead) LOG_INFO("store: cleared %d stale reader slot(s) in %s", dead, dir);
    MDB_envinfo info;
    mdb_env_info(s->env, &info);
    s->map_bytes = info.me_mapsize;
    rc = open_dbis(s, err, errlen);
    if (rc) {
        mdb_env_close(s->env);
        if (s->lock_fd >= 0) close(s->lock_fd);
        free(s->dir);
        free(s);
        return rc;
    }
    *out = s;
    return STORE_OK;
}

void store_close(store **sp) {
    if (!sp || !*sp) return;
    store *s = *sp;
    if (!s->readonly && s->nosync) mdb_env_sync(s->env, 1);
    mdb_env_close(s->env);
    if (s->lock_fd >= 0) close(s->lock_fd);   /* releases the writer flock */
    free(s->dir);
    free(s);
    *sp = NULL;
}

void store_set_nosync(store *s, int nosync) {
    s->nosync = nosync;
    if (!s->readonly) mdb_env_set_flags(s->env, MDB_NOSYNC, nosync ? 1 : 0);
}

int store_maintain(store *s) {
    int dead = 0;
    mdb_reader_check(s->env, &dead);
    if (dead) LOG_INFO("store: cleared %d stale reader slot(s)", dead);
    return dead;
}

int store_grow(store *s, char *err, size_t errlen) {
    if (s->open_txns) return util_err(err, errlen, "store: cannot grow the map with a transaction open"), STORE_ERR_IO;
    char lim[48];
    if (s->map_max && s->map_bytes >= s->map_max) {
        snprintf(s->last_err, sizeof s->last_err, "map full at its limit (map %.6g MiB, %.2f MiB used, %s) in %.300s",
                 mib(s->map_bytes), mib(store_used_bytes(s)), limit_text(s, lim, sizeof lim), s->dir);
        util_err(err, errlen, "store: %s", s->last_err);
        return STORE_ERR_MAP_FULL;
    }
    size_t nb = s->map_bytes * 2;
    if (s->map_max && nb > s->map_max) nb = s->map_max;
    int rc = mdb_env_set_mapsize(s->env, nb);
    if (rc == ENOMEM || rc == ENOSPC || rc == EFBIG || rc == EDQUOT) {
        /* the map cannot grow (no address space, or the file cannot be extended): full */
        snprintf(s->last_err, sizeof s->last_err, "map full: growing it from %.3g to %.6g MiB failed (%s; %.2f MiB used, %s) in %.300s",
                 mib(s->map_bytes), mib(nb), mdb_strerror(rc), mib(store_used_bytes(s)),
                 limit_text(s, lim, sizeof lim), s->dir);
        util_err(err, errlen, "store: %s", s->last_err);
        return STORE_ERR_MAP_FULL;
    }
    if (rc) return util_err(err, errlen, "store: growing the map to %zu bytes: %s", nb, mdb_strerror(rc)), STORE_ERR_IO;
    MDB_envinfo info;
    mdb_env_info(s->env, &info);
    s->map_bytes = info.me_mapsize;
    LOG_INFO("store: map grown to %.6g MiB", mib(s->map_bytes));
    return STORE_OK;
}

/* ======================================================================= transactions */

int store_txn_begin(store *s, int write, store_txn **out, char *err, size_t errlen) {
    *out = NULL;
    if (write && s->readonly) return util_err(err, errlen, "store: write on a read-only store"), STORE_ERR_READONLY;
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, write ? 0 : MDB_RDONLY, &txn);
    if (rc == MDB_MAP_RESIZED) {
        /* the writer grew the map since we opened: adopt the new size and retry */
        mdb_env_set_mapsize(s->env, 0);
        MDB_envinfo info;
        mdb_env_info(s->env, &info);
        s->map_bytes = info.me_mapsize;
        rc = mdb_txn_begin(s->env, NULL, write ? 0 : MDB_RDONLY, &txn);
    }
    if (rc) return util_err(err, errlen, "store: mdb_txn_begin: %s", mdb_strerror(rc)), mdb_rc(s, rc, "mdb_txn_begin");
    store_txn *t = xcalloc(1, sizeof *t);
    t->s = s; t->txn = txn; t->write = write;
    s->open_txns++;
    *out = t;
    return STORE_OK;
}

static void txn_release(store_txn *t) {
    for (size_t i = 0; i < t->nkeep; i++) proto_msg_destroy(&t->keep[i]);
    free(t->keep);
    for (size_t i = 0; i < t->narrs; i++) free(t->arrs[i]);
    free(t->arrs);
    t->s->open_txns--;
    free(t);
}

int store_txn_commit(store_txn **tp, char *err, size_t errlen) {
    store_txn *t = *tp;
    *tp = NULL;
    int rc = mdb_txn_commit(t->txn);
    store *s = t->s;
    txn_release(t);
    if (rc) {
        int src = mdb_rc(s, rc, "mdb_txn_commit");
        util_err(err, errlen, "store: commit: %s", mdb_strerror(rc));
        return src;
    }
    return STORE_OK;
}

void store_txn_abort(store_txn **tp) {
    if (!tp || !*tp) return;
    mdb_txn_abort((*tp)->txn);
    txn_release(*tp);
    *tp = NULL;
}

int store_write(store *s, store_write_fn fn, void *ctx, char *err, size_t errlen) {
    for (int tries = 0; tries < 12; tries++) {
        store_txn *t;
        int rc = store_txn_begin(s, 1, &t, err, errlen);
        if (rc) return rc;
        rc = fn(t, ctx);
        if (rc == STORE_OK) rc = store_txn_commit(&t, err, errlen);
        else store_txn_abort(&t);
        if (rc == STORE_ERR_DISK_FULL) {
            /* a bigger map needs a bigger file: growing cannot help */
            util_err(err, errlen, "store: file system full: %s", s->last_err);
            return rc;
        }
        if (rc != STORE_ERR_MAP_FULL) {
            if (rc <= STORE_ERR_NOTFOUND && rc >= STORE_ERR_READONLY && err && !*err)
                util_err(err, errlen, "store: %s%s%s", store_strerror(rc),
                                             s->last_err[0] ? ": " : "", s->last_err);
            return rc;
        }
        if (s->map_max && s->map_bytes >= s->map_max) return store_grow(s, err, errlen);  /* says why */
        LOG_INFO("store: map full at %.6g MiB; growing and retrying the write", mib(s->map_bytes));
        if (err) err[0] = 0;
        if ((rc = store_grow(s, err, errlen))) return rc;
    }
    char lim[48];
    snprintf(s->last_err, sizeof s->last_err, "map still full after growing to %.6g MiB (%s) in %.300s", mib(s->map_bytes),
             limit_text(s, lim, sizeof lim), s->dir);
    util_err(err, errlen, "store: %s", s->last_err);
    return STORE_ERR_MAP_FULL;
}

/* Allocates about `bytes` in a write transaction that is then aborted (1 KiB values: leaf
 * pages, so a fragmented free list counts too). */
static int room_fill(store_txn *t, void *ctx) {
    size_t bytes = *(size_t *)ctx;
    for (size_t i = 0, n = (bytes + 1023) / 1024; i < n; i++) {
        char k[32];
        int kl = snprintf(k, sizeof k, "~room_probe/%08zu", i);
        MDB_val key = {(size_t)kl, k}, val = {1024, NULL};
        int rc = mdb_put(t->txn, t->s->dbi[DB_META], &key, &val, MDB_RESERVE);
        if (rc) return mdb_rc(t->s, rc, "room probe");
        memset(val.mv_data, 0, 1024);
    }
    return STORE_ERR_NOTFOUND;   /* never commit */
}

int store_room_check(store *s, size_t bytes, char *err, size_t errlen) {
    if (s->readonly) return util_err(err, errlen, "store: read-only"), STORE_ERR_READONLY;
    char lim[48];
    struct statvfs vf;
    if (statvfs(s->dir, &vf) == 0 && (unsigned long long)vf.f_bavail * vf.f_frsize < bytes) {
        snprintf(s->last_err, sizeof s->last_err, "the file system holding %.300s has %llu KiB free (want %zu KiB)", s->dir,
                 (unsigned long long)vf.f_bavail * vf.f_frsize >> 10, bytes >> 10);
        return util_err(err, errlen, "store: %s", s->last_err), STORE_ERR_DISK_FULL;
    }
    struct rlimit rl;
    struct stat st;
    char path[4096];
    snprintf(path, sizeof path, "%s/data.mdb", s->dir);
    if (getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && stat(path, &st) == 0 &&
        (unsigned long long)st.st_size + bytes > (unsigned long long)rl.rlim_cur) {
        snprintf(s->last_err, sizeof s->last_err, "%.300s is %lld KiB, the file-size limit (ulimit -f) %llu KiB", path,
                 (long long)st.st_size >> 10, (unsigned long long)rl.rlim_cur >> 10);
        return util_err(err, errlen, "store: %s", s->last_err), STORE_ERR_DISK_FULL;
    }
    for (int tries = 0; tries < 12; tries++) {
        store_txn *t;
        int rc = store_txn_begin(s, 1, &t, err, errlen);
        if (rc) return rc;
        rc = room_fill(t, &bytes);
        store_txn_abort(&t);
        if (rc == STORE_ERR_NOTFOUND) return STORE_OK;
        if (rc != STORE_ERR_MAP_FULL) return util_err(err, errlen, "store: %s", s->last_err), rc;
        if ((rc = store_grow(s, err, errlen))) return rc;
    }
    snprintf(s->last_err, sizeof s->last_err, "no room for %zu KiB in the map (map %.6g MiB, %s)", bytes >> 10,
             mib(s->map_bytes), limit_text(s, lim, sizeof lim));
    return util_err(err, errlen, "store: %s", s->last_err), STORE_ERR_MAP_FULL;
}

/* ======================================================================= raw helpers */

static int raw_put(store_txn *t, int db, const void *k, size_t kl, const void *v, size_t vl, unsigned flags) {
    if (!t->write) return STORE_ERR_READONLY;
    MDB_val key = {kl, (void *)k}, val = {vl, (void *)v};
    int rc = mdb_put(t->txn, t->s->dbi[db], &key, &val, flags);
    if (rc == MDB_KEYEXIST) return 1;
    return mdb_rc(t->s, rc, db_names[db]);
}

static int raw_get(store_txn *t, int db, const void *k, size_t kl, MDB_val *out) {
    MDB_val key = {kl, (void *)k};
    return mdb_rc(t->s, mdb_get(t->txn, t->s->dbi[db], &key, out), db_names[db]);
}

static int raw_del(store_txn *t, int db, const void *k, size_t kl) {
    if (!t->write) return STORE_ERR_READONLY;
    MDB_val key = {kl, (void *)k};
    return mdb_rc(t->s, mdb_del(t->txn, t->s->dbi[db], &key, NULL), db_names[db]);
}

static int put_writer(store_txn *t, int db, const void *k, size_t kl, proto_writer *w, unsigned flags) {
    size_t n;
    const void *d = proto_writer_data(w, &n);
    int rc = raw_put(t, db, k, kl, d, n, flags);
    proto_writer_destroy(&w);
    return rc;
}

/* Decodes a record; the tree is kept by the txn (keep=1) or returned for the caller to free. */
static int decode(store_txn *t, const MDB_val *v, int keep, proto_msg **out) {
    char e[160];
    int rc = proto_parse_value(v->mv_data, v->mv_size, out, e, sizeof e);
    if (rc || proto_root(*out)->type != PV_MAP) {
        if (!rc) proto_msg_destroy(out);
        snprintf(t->s->last_err, sizeof t->s->last_err, "corrupt record: %s", rc ? e : "not a map");
        return STORE_ERR_CORRUPT;
    }
    if (keep) {
        if (t->nkeep == t->capkeep) {
            t->capkeep = t->capkeep ? t->capkeep * 2 : 16;
            t->keep = xrealloc(t->keep, t->capkeep * sizeof *t->keep);
        }
        t->keep[t->nkeep++] = *out;
    }
    return STORE_OK;
}

static uint64_t gu(const proto_val *m, const char *k) {
    uint64_t x = 0;
    proto_get_u64(m, k, &x);
    return x;
}
static int64_t gi(const proto_val *m, const char *k) {
    int64_t x = 0;
    proto_get_i64(m, k, &x);
    return x;
}
static double gf(const proto_val *m, const char *k, double dflt) {
    double x = dflt;
    if (proto_get_f64(m, k, &x) != 0) {
        const proto_val *v = proto_get(m, k);
        if (v && v->type == PV_NIL) x = NAN;
    }
    return x;
}
/* String field k as a view and its length ("" and 0 when absent or not a string). In a light
 * map (see "light records") the view is not NUL-terminated: use the length. */
static const char *gv(const proto_val *m, const char *k, uint32_t *len) {
    const char *s = "";
    uint32_t n = 0;
    if (proto_get_str(m, k, &s, &n) != 0) { s = ""; n = 0; }
    if (len) *len = n;
    return s;
}
/* Copies string field k into dst[cap] up to its first NUL, truncated to cap - 1 bytes (what
 * snprintf "%s" did), reading no further than the string's length (light-map views). */
static void gs(const proto_val *m, const char *k, char *dst, size_t cap) {
    uint32_t n;
    const char *s = gv(m, k, &n);
    size_t c = strnlen(s, n < cap - 1 ? n : cap - 1);
    memcpy(dst, s, c);
    dst[c] = 0;
}

#define KU(w, k, x) (proto_w_key((w), (k)), proto_w_u64((w), (uint64_t)(x)))
#define KI(w, k, x) (proto_w_key((w), (k)), proto_w_i64((w), (int64_t)(x)))
#define KF(w, k, x) (proto_w_key((w), (k)), proto_w_f64((w), (double)(x)))
#define KS(w, k, x) (proto_w_key((w), (k)), proto_w_str((w), (x)))

/* Cursor walk over keys starting with prefix[0..pl); fn gets each value. */
typedef int (*walk_fn)(store_txn *t, const MDB_val *k, const MDB_val *v, void *ctx);
static int walk(store_txn *t, int db, const void *prefix, size_t pl, walk_fn fn, void *ctx) {
    MDB_cursor *c;
    int rc = mdb_cursor_open(t->txn, t->s->dbi[db], &c);
    if (rc) return mdb_rc(t->s, rc, "mdb_cursor_open");
    MDB_val k = {pl, (void *)prefix}, v;
    rc = mdb_cursor_get(c, &k, &v, pl ? MDB_SET_RANGE : MDB_FIRST);
    int out = STORE_OK;
    while (rc == MDB_SUCCESS) {
        if (pl && (k.mv_size < pl || memcmp(k.mv_data, prefix, pl) != 0)) break;
        int r = fn(t, &k, &v, ctx);
        if (r) { out = r < 0 ? r : STORE_OK; break; }
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) out = mdb_rc(t->s, rc, "mdb_cursor_get");
    mdb_cursor_close(c);
    return out;
}

/* Runs fn inside its own read transaction. */
typedef int (*read_fn)(store_txn *t, void *ctx);
static int with_read(store *s, read_fn fn, void *ctx, char *err, size_t errlen) {
    store_txn *t;
    int rc = store_txn_begin(s, 0, &t, err, errlen);
    if (rc) return rc;
    rc = fn(t, ctx);
    store_txn_abort(&t);
    if (rc && rc != STORE_ERR_NOTFOUND)
        util_err(err, errlen, "store: %s%s%s", store_strerror(rc), s->last_err[0] ? ": " : "", s->last_err);
    return rc;
}

/* ======================================================================= light records */

/* A record decoded "light": only the top-level keys a decoder asks for, collected into a flat
 * proto_val map that the same gu/gi/gf/gs/gv helpers (and so the same X_from decoders) read.
 * Nothing is allocated or copied: strings are views into the record's bytes (NOT
 * NUL-terminated: gv/gs use the length), nested arrays and maps are validated and skipped
 * (they read as empty). The whole record is still checked exactly as proto_parse_value checks
 * it (size, bounds, declared counts, depth, value count, string keys, trailing bytes), so a
 * record decodes light if and only if it decodes whole, to the same field values.
 * Used where the big fields are not needed: a generation's text is ~1 KB of the ~1.1 KB record,
 * and the aggregate payload reads every generation of a job for its time_s alone. */
#define LIGHT_MAX_KEYS 16
typedef struct {
    proto_val map;                       /* PV_MAP over the arrays below: the wanted keys found */
    const char *keys[LIGHT_MAX_KEYS];
    uint32_t key_lens[LIGHT_MAX_KEYS];
    proto_val vals[LIGHT_MAX_KEYS];
} light_rec;

typedef struct {
    const uint8_t *p;
    size_t len, off, nodes;
    const char *const *want;             /* NULL-terminated key names (top-level map only) */
    uint32_t want_len[LIGHT_MAX_KEYS];   /* their lengths */
    light_rec *lr;
    char why[200];                       /* what was wrong, on failure */
} light_rd;

static int light_fail(light_rd *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int light_fail(light_rd *r, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->why, sizeof r->why, fmt, ap);
    va_end(ap);
    return STORE_ERR_CORRUPT;
}
static int light_need(light_rd *r, size_t n, const char *what) {
    if (r->len - r->off < n)
        return light_fail(r, "%s needs %zu bytes, %zu left at offset %zu", what, n, r->len - r->off, r->off);
    return 0;
}

static int light_val(light_rd *r, proto_val *out, int depth);

static int light_bytes(light_rd *r, proto_val *out, uint32_t n, int is_str) {
    int rc = light_need(r, n, is_str ? "string" : "bin");
    if (rc) return rc;
    if (is_str) { out->type = PV_STR; out->v.str.ptr = (const char *)r->p + r->off; out->v.str.len = n; }
    else { out->type = PV_BIN; out->v.bin.ptr = r->p + r->off; out->v.bin.len = n; }
    r->off += n;
    return 0;
}

static int light_array(light_rd *r, proto_val *out, uint32_t n, int depth) {
    if (n > r->len - r->off)
        return light_fail(r, "array count %u exceeds remaining %zu bytes at offset %zu", n, r->len - r->off, r->off);
    proto_val scratch;
    for (uint32_t i = 0; i < n; i++) {
        int rc = light_val(r, &scratch, depth + 1);
        if (rc) return rc;
    }
    out->type = PV_ARRAY; out->v.arr.items = NULL; out->v.arr.n = 0;   /* skipped */
    return 0;
}

/* A map; at depth 0 the wanted keys' values are collected into r->lr (first occurrence wins,
 * as proto_get finds the first). */
static int light_map(light_rd *r, proto_val *out, uint32_t n, int depth) {
    if (n > (r->len - r->off) / 2)
        return light_fail(r, "map count %u exceeds remaining %zu bytes at offset %zu", n, r->len - r->off, r->off);
    light_rec *lr = depth == 0 ? r->lr : NULL;
    uint32_t found = 0;
    for (uint32_t i = 0; i < n; i++) {
        size_t koff = r->off;
        proto_val key, val;
        int rc = light_val(r, &key, depth + 1);
        if (rc) return rc;
        if (key.type != PV_STR) return light_fail(r, "map key at offset %zu is not a string", koff);
        if ((rc = light_val(r, &val, depth + 1))) return rc;
        if (!lr) continue;
        for (int w = 0; r->want[w]; w++) {
            uint32_t wl = r->want_len[w];
            if ((found >> w & 1u) || key.v.str.len != wl || (wl && key.v.str.ptr[0] != r->want[w][0]) ||
                memcmp(key.v.str.ptr, r->want[w], wl) != 0)
                continue;
            found |= 1u << w;
            uint32_t j = lr->map.v.map.n++;
            lr->keys[j] = r->want[w];
            lr->key_lens[j] = wl;
            lr->vals[j] = val;
            break;
        }
    }
    if (!lr) { out->type = PV_MAP; out->v.map.keys = NULL; out->v.map.key_lens = NULL; out->v.map.vals = NULL; out->v.map.n = 0; }
    else out->type = PV_MAP;
    return 0;
}

/* One value at r->off, as jobs/proto.c's reader does it (same limits, same accepted types). */
static int light_val(light_rd *r, proto_val *out, int depth) {
    if (depth > PROTO_MAX_DEPTH) return light_fail(r, "nesting deeper than %d at offset %zu", PROTO_MAX_DEPTH, r->off);
    if (++r->nodes > PROTO_MAX_NODES) return light_fail(r, "more than %u values", PROTO_MAX_NODES);
    int rc = light_need(r, 1, "value");
    if (rc) return rc;
    uint8_t t = r->p[r->off++];
    if (t <= 0x7f) { out->type = PV_UINT; out->v.u = t; return 0; }
    if (t >= 0xe0) { out->type = PV_INT; out->v.i = (int8_t)t; return 0; }
    if (t <= 0x8f) return light_map(r, out, t & 0x0f, depth);
    if (t <= 0x9f) return light_array(r, out, t & 0x0f, depth);
    if (t <= 0xbf) return light_bytes(r, out, t & 0x1f, 1);
    int n;
    switch (t) {
    case 0xc0: out->type = PV_NIL; return 0;
    case 0xc2: case 0xc3: out->type = PV_BOOL; out->v.b = t == 0xc3; return 0;
    case 0xc4: case 0xc5: case 0xc6: case 0xd9: case 0xda: case 0xdb: {
        n = (t == 0xc4 || t == 0xd9) ? 1 : (t == 0xc5 || t == 0xda) ? 2 : 4;
        if ((rc = light_need(r, (size_t)n, "length"))) return rc;
        uint32_t len = (uint32_t)get_be(r->p + r->off, n);
        r->off += (size_t)n;
        return light_bytes(r, out, len, t >= 0xd9);
    }
    case 0xca: {
        if ((rc = light_need(r, 4, "float32"))) return rc;
        uint32_t b = (uint32_t)get_be(r->p + r->off, 4);
        float f;
        memcpy(&f, &b, 4);
        r->off += 4; out->type = PV_FLOAT; out->v.f = f; return 0;
    }
    case 0xcb: {
        if ((rc = light_need(r, 8, "float64"))) return rc;
        uint64_t b = get_be(r->p + r->off, 8);
        double f;
        memcpy(&f, &b, 8);
        r->off += 8; out->type = PV_FLOAT; out->v.f = f; return 0;
    }
    case 0xcc: case 0xcd: case 0xce: case 0xcf:
        n = 1 << (t - 0xcc);
        if ((rc = light_need(r, (size_t)n, "uint"))) return rc;
        out->type = PV_UINT; out->v.u = get_be(r->p + r->off, n);
        r->off += (size_t)n; return 0;
    case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
        n = 1 << (t - 0xd0);
        if ((rc = light_need(r, (size_t)n, "int"))) return rc;
        uint64_t u = get_be(r->p + r->off, n);
        int64_t x;
        if (n == 1) x = (int8_t)u; else if (n == 2) x = (int16_t)u;
        else if (n == 4) x = (int32_t)u; else memcpy(&x, &u, 8);
        out->type = PV_INT; out->v.i = x;
        r->off += (size_t)n; return 0;
    }
    case 0xdc: case 0xdd: case 0xde: case 0xdf: {
        n = (t == 0xdc || t == 0xde) ? 2 : 4;
        if ((rc = light_need(r, (size_t)n, "count"))) return rc;
        uint32_t cnt = (uint32_t)get_be(r->p + r->off, n);
        r->off += (size_t)n;
        return t <= 0xdd ? light_array(r, out, cnt, depth) : light_map(r, out, cnt, depth);
    }
    default:
        return light_fail(r, "unsupported msgpack type 0x%02x at offset %zu", t, r->off - 1);
    }
}

/* Decodes record v of db light: lr->map gets the keys of want (NULL-terminated, at most
 * LIGHT_MAX_KEYS) that the record has. STORE_ERR_CORRUPT (last_err names the database and
 * what was wrong) where proto_parse_value would fail or the record is not a map. */
static int decode_light(store_txn *t, int db, const MDB_val *v, const char *const *want, light_rec *lr) {
    light_rd r = {.p = v->mv_data, .len = v->mv_size, .want = want, .lr = lr};
    for (int w = 0; want[w] && w < LIGHT_MAX_KEYS; w++) r.want_len[w] = (uint32_t)strlen(want[w]);
    lr->map.type = PV_MAP;
    lr->map.v.map.keys = lr->keys;
    lr->map.v.map.key_lens = lr->key_lens;
    lr->map.v.map.vals = lr->vals;
    lr->map.v.map.n = 0;
    proto_val root;
    int rc;
    if (v->mv_size > PROTO_MAX_BODY) rc = light_fail(&r, "%zu bytes exceeds the limit of %u", v->mv_size, PROTO_MAX_BODY);
    else if (!v->mv_data && v->mv_size) rc = light_fail(&r, "no data");
    else rc = light_val(&r, &root, 0);
    if (!rc && r.off != r.len) rc = light_fail(&r, "%zu trailing bytes after the value at offset %zu", r.len - r.off, r.off);
    if (!rc && root.type != PV_MAP) rc = light_fail(&r, "not a map");
    if (rc) {
        lr->map.v.map.n = 0;
        snprintf(t->s->last_err, sizeof t->s->last_err, "corrupt record in %s: %s", db_names[db], r.why);
    }
    return rc;
}

/* ======================================================================= generic records */

/* Every record type has a decoder X_from(map, X *) (typed as void * so one pointer type fits
 * all); a get is "key -> raw_get -> decode -> X_from", a walk is "prefix -> walk -> decode ->
 * X_from -> the caller's callback". A type with a light view (generations, scores) has its
 * shared fields in X_meta_from, which X_from calls and which also reads light maps: get_light
 * and walks with each_ctx.light run "decode_light -> X_meta_from". */
typedef void (*from_fn)(const proto_val *m, void *out);

/* Reads and decodes the record at key k; *m is kept by the txn (keep=1) or the caller's to free.
 * STORE_ERR_NOTFOUND if absent, STORE_ERR_CORRUPT if not a msgpack map. */
static int get_record(store_txn *t, int db, const void *k, size_t kl, int keep, proto_msg **m) {
    MDB_val v;
    int rc = raw_get(t, db, k, kl, &v);
    return rc ? rc : decode(t, &v, keep, m);
}

/* get_record + from into out. keep=1 for records whose string views are handed out until the
 * transaction ends (problems, generations, scores); keep=0 where from copies everything. */
static int get_as(store_txn *t, int db, const void *k, size_t kl, int keep, from_fn from, void *out) {
    proto_msg *m;
    int rc = get_record(t, db, k, kl, keep, &m);
    if (rc) return rc;
    from(proto_root(m), out);
    if (!keep) proto_msg_destroy(&m);
    return STORE_OK;
}

/* The light counterpart of get_as: the record at key k decoded light (only the keys in want,
 * NULL-terminated; see "light records"), then from into out. Nothing is kept by the txn: from
 * must copy what it keeps (string views point into LMDB's map). */
static int get_light(store_txn *t, int db, const void *k, size_t kl, const char *const *want, from_fn from, void *out) {
    MDB_val v;
    light_rec lr;
    int rc = raw_get(t, db, k, kl, &v);
    if (!rc) rc = decode_light(t, db, &v, want, &lr);
    if (rc) return rc;
    from(&lr.map, out);
    return STORE_OK;
}

/* Records keyed by a big-endian u64 id (jobs, tasks, leases, stats). */
static int get_id(store_txn *t, int db, uint64_t id, from_fn from, void *out) {
    uint8_t k[8];
    put_be(k, id, 8);
    return get_as(t, db, k, 8, 0, from, out);
}
static int put_id(store_txn *t, int db, uint64_t id, proto_writer *w) {
    uint8_t k[8];
    put_be(k, id, 8);
    return put_writer(t, db, k, 8, w, 0);
}

/* put_writer under MDB_NOOVERWRITE, as the idempotent inserts report it: 1 inserted, 0 the key
 * existed, < 0 error. */
static int inserted(int put_rc) { return put_rc == 1 ? 0 : put_rc == STORE_OK ? 1 : put_rc; }

/* The msgpack bytes of v (an empty map if v is NULL), malloc'ed; *len gets their size. */
static uint8_t *val_copy(const proto_val *v, size_t *len) {
    proto_writer *w = proto_writer_new(NULL, 0);
    if (v) proto_w_val(w, v); else proto_w_map(w, 0);
    const void *d = proto_writer_data(w, len);
    uint8_t *out = xmalloc(*len);
    memcpy(out, d, *len);
    proto_writer_destroy(&w);
    return out;
}

typedef union {
    store_job_fn job; store_problem_fn problem; store_task_fn task; store_lease_fn lease;
    store_generation_fn generation; store_generation_meta_fn generation_meta; store_score_fn score;
    store_score_meta_fn score_meta; store_worker_fn worker;
} user_fn;

/* One walk: db, the 8-byte job prefix (by_job) or every key, and how a decoded record reaches
 * the caller's callback (deliver decodes with X_from and calls fn; nonzero stops the walk).
 * light NULL decodes whole records; else only those top-level keys (NULL-terminated), light. */
typedef struct each_ctx each_ctx;
typedef int (*deliver_fn)(const proto_val *m, const each_ctx *c);
struct each_ctx {
    int db, by_job;
    uint64_t job;
    deliver_fn deliver;
    user_fn fn;
    void *ctx;
    const char *const *light;
};

static int each_cb(store_txn *t, const MDB_val *k, const MDB_val *v, void *vctx) {
    const each_ctx *c = vctx;
    if (c->light) {
        light_rec lr;
        int rc = decode_light(t, c->db, v, c->light, &lr);
        if (rc) return rc;
        return c->deliver(&lr.map, c) ? 1 : 0;   /* views live until the callback returns */
    }
    proto_msg *m;
    int rc = decode(t, v, 0, &m);
    if (rc) return rc;
    rc = c->deliver(proto_root(m), c);   /* views live until the callback returns */
    proto_msg_destroy(&m);
    return rc ? 1 : 0;
}

/* Runs the walk c describes (a read_fn, so with_read can run it in its own transaction). */
static int each_prefix(store_txn *t, void *vctx) {
    each_ctx *c = vctx;
    uint8_t pre[8];
    put_be(pre, c->job, 8);
    return walk(t, c->db, pre, c->by_job ? 8 : 0, each_cb, c);
}

/* ======================================================================= counters */

int store_next_id(store_txn *t, const char *counter, uint64_t *out) {
    MDB_val v;
    uint64_t x = 1;
    int rc = raw_get(t, DB_META, counter, strlen(counter), &v);
    if (rc == STORE_OK && v.mv_size == 8) x = get_be(v.mv_data, 8);
    else if (rc != STORE_OK && rc != STORE_ERR_NOTFOUND) return rc;
    uint8_t b[8];
    put_be(b, x + 1, 8);
    rc = raw_put(t, DB_META, counter, strlen(counter), b, 8, 0);
    if (rc) return rc;
    *out = x;
    return STORE_OK;
}

/* ======================================================================= jobs */

void store_job_free(store_job *j) {
    if (!j) return;
    free(j->spec_json);
    j->spec_json = NULL;
    free(j->params);
    j->params = NULL;
    j->params_len = 0;
}

void store_job_id_format(uint64_t id, char *buf, size_t cap) {
    snprintf(buf, cap, "j-%06" PRIu64, id);
}

int store_job_id_parse(const char *text, uint64_t *out) {
    if (!text) return -1;
    const char *p = text;
    if (p[0] == 'j' && p[1] == '-') p += 2;
    if (!*p) return -1;
    uint64_t x = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        if (x > (UINT64_MAX - 9) / 10) return -1;
        x = x * 10 + (uint64_t)(*p - '0');
    }
    if (x == 0) return -1;
    *out = x;
    return 0;
}

int store_job_put(store_txn *t, const store_job *j) {
    proto_writer *w = proto_writer_new(NULL, 0);
    proto_w_map(w, 31);
    KU(w, "id", j->id); KS(w, "name", j->name); KS(w, "state", j->state);
    KI(w, "priority", j->priority);
    KI(w, "created_ms", j->created_ms); KI(w, "started_ms", j->started_ms); KI(w, "finished_ms", j->finished_ms);
    KU(w, "n_problems", j->n_problems); KU(w, "n_samples", j->n_samples); KU(w, "chunk", j->chunk);
    KU(w, "n_chunks", j->n_chunks); KU(w, "max_attempts", j->max_attempts);
    KU(w, "chunks_sampled", j->chunks_sampled); KU(w, "chunks_scored", j->chunks_scored);
    KU(w, "samples_done", j->samples_done); KU(w, "scores_done", j->scores_done);
    KU(w, "tasks_ready", j->tasks_ready); KU(w, "tasks_leased", j->tasks_leased);
    KU(w, "tasks_done", j->tasks_done); KU(w, "tasks_failed", j->tasks_failed);
    KU(w, "tasks_cancelled", j->tasks_cancelled);
    KU(w, "agg_task", j->agg_task); KU(w, "agg_dirty", j->agg_dirty);
    KU(w, "agg_scores_at", j->agg_scores_at); KU(w, "final_created", j->final_created);
    KU(w, "failed_task", j->failed_task); KS(w, "error", j->error);
    KS(w, "spec", j->spec_json ? j->spec_json : "");
    KU(w, "schema", STORE_SCHEMA_VERSION);
    KU(w, "kind", 0);  /* reserved: 0 = sampling job */
    proto_w_key(w, "params");
    if (j->params && j->params_len) proto_w_raw(w, j->params, j->params_len);
    else proto_w_map(w, 0);
    return put_id(t, DB_JOBS, j->id, w);
}

/* Copies everything (spec_json and params are malloc'ed: store_job_free). */
static void job_from(const proto_val *m, void *out) {
    store_job *j = out;
    memset(j, 0, sizeof *j);
    j->id = gu(m, "id");
    gs(m, "name", j->name, sizeof j->name);
    gs(m, "state", j->state, sizeof j->state);
    j->priority = (int32_t)gi(m, "priority");
    j->created_ms = gi(m, "created_ms"); j->started_ms = gi(m, "started_ms"); j->finished_ms = gi(m, "finished_ms");
    j->n_problems = (uint32_t)gu(m, "n_problems"); j->n_samples = (uint32_t)gu(m, "n_samples");
    j->chunk = (uint32_t)gu(m, "chunk"); j->n_chunks = (uint32_t)gu(m, "n_chunks");
    j->max_attempts = (uint32_t)gu(m, "max_attempts");
    j->chunks_sampled = (uint32_t)gu(m, "chunks_sampled"); j->chunks_scored = (uint32_t)gu(m, "chunks_scored");
    j->samples_done = gu(m, "samples_done"); j->scores_done = gu(m, "scores_done");
    j->tasks_ready = (uint32_t)gu(m, "tasks_ready"); j->tasks_leased = (uint32_t)gu(m, "tasks_leased");
    j->tasks_done = (uint32_t)gu(m, "tasks_done"); j->tasks_failed = (uint32_t)gu(m, "tasks_failed");
    j->tasks_cancelled = (uint32_t)gu(m, "tasks_cancelled");
    j->agg_task = gu(m, "agg_task"); j->agg_dirty = (int)gu(m, "agg_dirty");
    j->agg_scores_at = gu(m, "agg_scores_at");
    j->final_created = (int)gu(m, "final_created");
    j->failed_task = gu(m, "failed_task");
    gs(m, "error", j->error, sizeof j->error);
    j->spec_json = xstrdup(gv(m, "spec", NULL));
    const proto_val *pv = proto_get(m, "params");
    if (pv) j->params = val_copy(pv, &j->params_len);
}

int store_job_get(store_txn *t, uint64_t id, store_job *out) {
    return get_id(t, DB_JOBS, id, job_from, out);
}

static int job_deliver(const proto_val *m, const each_ctx *c) {
    store_job j;
    job_from(m, &j);
    int rc = c->fn.job(&j, c->ctx);
    store_job_free(&j);
    return rc;
}

int store_jobs_each_txn(store_txn *t, store_job_fn fn, void *ctx) {
    each_ctx c = {DB_JOBS, 0, 0, job_deliver, {.job = fn}, ctx, NULL};
    return each_prefix(t, &c);
}

int store_jobs_each(store *s, store_job_fn fn, void *ctx, char *err, size_t errlen) {
    each_ctx c = {DB_JOBS, 0, 0, job_deliver, {.job = fn}, ctx, NULL};
    return with_read(s, each_prefix, &c, err, errlen);
}

typedef struct { const char *name; uint64_t best; } find_ctx;
static int find_cb(const store_job *j, void *ctx) {
    find_ctx *f = ctx;
    if (strcmp(j->name, f->name) == 0) f->best = j->id;  /* id order: the last match is newest */
    return 0;
}

int store_job_find_txn(store_txn *t, const char *id_or_name, store_job *out) {
    uint64_t id;
    if (store_job_id_parse(id_or_name, &id) == 0) {
        int rc = store_job_get(t, id, out);
        if (rc != STORE_ERR_NOTFOUND) return rc;
    }
    find_ctx f = {id_or_name, 0};
    int rc = store_jobs_each_txn(t, find_cb, &f);
    if (rc) return rc;
    if (!f.best) return STORE_ERR_NOTFOUND;
    return store_job_get(t, f.best, out);
}

typedef struct { const char *q; store_job *out; } find_rd;
static int find_rd_fn(store_txn *t, void *ctx) {
    find_rd *c = ctx;
    return store_job_find_txn(t, c->q, c->out);
}
int store_job_find(store *s, const char *id_or_name, store_job *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    find_rd c = {id_or_name, out};
    int rc = with_read(s, find_rd_fn, &c, err, errlen);
    if (rc == STORE_ERR_NOTFOUND) util_err(err, errlen, "no job \"%s\"", id_or_name);
    return rc;
}

/* ======================================================================= problems */

static void problem_key(uint8_t k[12], uint64_t job, uint32_t p) {
    put_be(k, job, 8); put_be(k + 8, p, 4);
}

int store_problem_put(store_txn *t, uint64_t job, const store_problem *p) {
    uint8_t k[12];
    problem_key(k, job, p->p);
    proto_writer *w = proto_writer_new(NULL, 0);
    proto_w_map(w, 7);
    KU(w, "p", p->p);
    KS(w, "id", p->id ? p->id : ""); KS(w, "question", p->question ? p->question : "");
    KS(w, "solution", p->solution ? p->solution : ""); KS(w, "answer", p->answer ? p->answer : "");
    KS(w, "subject", p->subject ? p->subject : ""); KI(w, "level", p->level);
    return put_writer(t, DB_PROBLEMS, k, 12, w, 0);
}

/* String fields are views into m. */
static void problem_from(const proto_val *m, void *out) {
    store_problem *p = out;
    p->p = (uint32_t)gu(m, "p");
    p->id = gv(m, "id", NULL); p->question = gv(m, "question", NULL);
    p->solution = gv(m, "solution", NULL); p->answer = gv(m, "answer", NULL);
    p->subject = gv(m, "subject", NULL); p->level = (int32_t)gi(m, "level");
}

int store_problem_get(store_txn *t, uint64_t job, uint32_t pi, store_problem *out) {
    uint8_t k[12];
    problem_key(k, job, pi);
    return get_as(t, DB_PROBLEMS, k, 12, 1, problem_from, out);
}

static int problem_deliver(const proto_val *m, const each_ctx *c) {
    store_problem p;
    problem_from(m, &p);
    return c->fn.problem(&p, c->ctx);
}
int store_problems_each_txn(store_txn *t, uint64_t job, store_problem_fn fn, void *ctx) {
    each_ctx c = {DB_PROBLEMS, 1, job, problem_deliver, {.problem = fn}, ctx, NULL};
    return each_prefix(t, &c);
}
int store_problems_each(store *s, uint64_t job, store_problem_fn fn, void *ctx, char *err, size_t errlen) {
    each_ctx c = {DB_PROBLEMS, 1, job, problem_deliver, {.problem = fn}, ctx, NULL};
    return with_read(s, each_prefix, &c, err, errlen);
}

/* ======================================================================= tasks */

int store_task_put(store_txn *t, const store_task *x) {
    proto_writer *w = proto_writer_new(NULL, 0);
    proto_w_map(w, 20);
    KU(w, "id", x->id); KU(w, "job", x->job); KI(w, "kind", x->kind); KI(w, "state", x->state);
    KU(w, "chunk", x->chunk); KU(w, "p_begin", x->p_begin); KU(w, "p_end", x->p_end);
    KI(w, "final", x->final); KI(w, "priority", x->priority); KU(w, "seq", x->seq);
    KU(w, "attempt", x->attempt); KU(w, "failures", x->failures);
    KU(w, "outputs_done", x->outputs_done); KU(w, "outputs_total", x->outputs_total);
    KS(w, "worker", x->worker);
    KI(w, "created_ms", x->created_ms); KI(w, "leased_ms", x->leased_ms); KI(w, "finished_ms", x->finished_ms);
    KS(w, "error", x->error);
    KS(w, "kind_name", brk_kind_name(x->kind));
    return put_id(t, DB_TASKS, x->id, w);
}

static void task_from(const proto_val *m, void *out) {
    store_task *x = out;
    memset(x, 0, sizeof *x);
    x->id = gu(m, "id"); x->job = gu(m, "job");
    x->kind = (int32_t)gi(m, "kind"); x->state = (int32_t)gi(m, "state");
    x->chunk = (uint32_t)gu(m, "chunk"); x->p_begin = (uint32_t)gu(m, "p_begin"); x->p_end = (uint32_t)gu(m, "p_end");
    x->final = (int32_t)gi(m, "final"); x->priority = (int32_t)gi(m, "priority"); x->seq = gu(m, "seq");
    x->attempt = (uint32_t)gu(m, "attempt"); x->failures = (uint32_t)gu(m, "failures");
    x->outputs_done = gu(m, "outputs_done"); x->outputs_total = gu(m, "outputs_total");
    gs(m, "worker", x->worker, sizeof x->worker);
    x->created_ms = gi(m, "created_ms"); x->leased_ms = gi(m, "leased_ms"); x->finished_ms = gi(m, "finished_ms");
    gs(m, "error", x->error, sizeof x->error);
}

int store_task_get(store_txn *t, uint64_t id, store_task *out) {
    return get_id(t, DB_TASKS, id, task_from, out);
}

/* Tasks are keyed by id alone: a job's tasks are found by filtering (c->job 0 = all). */
static int task_deliver(const proto_val *m, const each_ctx *c) {
    store_task x;
    task_from(m, &x);
    if (c->job && x.job != c->job) return 0;
    return c->fn.task(&x, c->ctx);
}
int store_tasks_each_txn(store_txn *t, uint64_t job, store_task_fn fn, void *ctx) {
    each_ctx c = {DB_TASKS, 0, job, task_deliver, {.task = fn}, ctx, NULL};
    return each_prefix(t, &c);
}
/* ======================================================================= ready queue */

static void ready_key(uint8_t k[13], uint8_t role, int32_t priority, uint64_t seq) {
    k[0] = role;
    /* higher priority sorts first: INT32_MAX - prio maps [INT32_MIN, INT32_MAX] onto [2^32-1, 0] */
    put_be(k + 1, (uint32_t)((int64_t)INT32_MAX - (int64_t)priority), 4);
    put_be(k + 5, seq, 8);
}

int store_ready_push(store_txn *t, uint8_t role, int32_t priority, uint64_t seq, uint64_t task) {
    uint8_t k[13], v[8];
    ready_key(k, role, priority, seq);
    put_be(v, task, 8);
    return raw_put(t, DB_READY, k, 13, v, 8, 0);
}

int store_ready_del(store_txn *t, uint8_t role, int32_t priority, uint64_t seq) {
    uint8_t k[13];
    ready_key(k, role, priority, seq);
    return raw_del(t, DB_READY, k, 13);
}

static int first_cb(store_txn *t, const MDB_val *k, const MDB_val *v, void *ctx) {
    if (v->mv_size != 8) return STORE_ERR_CORRUPT;
    *(uint64_t *)ctx = get_be(v->mv_data, 8);
    return 1;
}
int store_ready_first(store_txn *t, uint8_t role, uint64_t *task) {
    uint64_t x = 0;
    int rc = walk(t, DB_READY, &role, 1, first_cb, &x);
    if (rc) return rc;
    if (!x) return STORE_ERR_NOTFOUND;
    *task = x;
    return STORE_OK;
}

int store_ready_del_first(store_txn *t, uint8_t role) {
    MDB_cursor *c;
    int rc = mdb_cursor_open(t->txn, t->s->dbi[DB_READY], &c);
    if (rc) return mdb_rc(t->s, rc, "mdb_cursor_open");
    MDB_val k = {1, &role}, v;
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    if (rc == MDB_SUCCESS && (k.mv_size < 1 || ((uint8_t *)k.mv_data)[0] != role)) rc = MDB_NOTFOUND;
    if (rc == MDB_SUCCESS) rc = mdb_cursor_del(c, 0);
    mdb_cursor_close(c);
    return mdb_rc(t->s, rc, "ready");
}

static int count_cb(store_txn *t, const MDB_val *k, const MDB_val *v, void *ctx) {
    (*(uint64_t *)ctx)++;
    return 0;
}
uint64_t store_ready_count(store_txn *t, uint8_t role) {
    uint64_t n = 0;
    if (role == 0) {
        MDB_stat st;
        if (mdb_stat(t->txn, t->s->dbi[DB_READY], &st) == 0) n = st.ms_entries;
        return n;
    }
    walk(t, DB_READY, &role, 1, count_cb, &n);
    return n;
}

/* ======================================================================= leases */

int store_lease_put(store_txn *t, const store_lease *l) {
    proto_writer *w = proto_writer_new(NULL, 0);
    proto_w_map(w, 4);
    KU(w, "task", l->task); KS(w, "worker", l->worker); KU(w, "attempt", l->attempt); KI(w, "since_ms", l->since_ms);
    return put_id(t, DB_LEASES, l->task, w);
}

static void lease_from(const proto_val *m, void *out) {
    store_lease *l = out;
    memset(l, 0, sizeof *l);
    l->task = gu(m, "task");
    gs(m, "worker", l->worker, sizeof l->worker);
    l->attempt = (uint32_t)gu(m, "attempt");
    l->since_ms = gi(m, "since_ms");
}

int store_lease_get(store_txn *t, uint64_t task, store_lease *out) {
    return get_id(t, DB_LEASES, task, lease_from, out);
}

int store_lease_del(store_txn *t, uint64_t task) {
    uint8_t k[8];
    put_be(k, task, 8);
    return raw_del(t, DB_LEASES, k, 8);
}

static int lease_deliver(const proto_val *m, const each_ctx *c) {
    store_lease l;
    lease_from(m, &l);
    return c->fn.lease(&l, c->ctx);
}
int store_leases_each_txn(store_txn *t, store_lease_fn fn, void *ctx) {
    each_ctx c = {DB_LEASES, 0, 0, lease_deliver, {.lease = fn}, ctx, NULL};
    return each_prefix(t, &c);
}

/* ======================================================================= generations */

static void ps_key(uint8_t k[16], uint64_t job, uint32_t p, uint32_t s) {
    put_be(k, job, 8); put_be(k + 8, p, 4); put_be(k + 12, s, 4);
}

int store_generation_put(store_txn *t, uint64_t job, const store_generation *g) {
    uint8_t k[16];
    ps_key(k, job, g->p, g->s);
    proto_writer *w = proto_writer_new(NULL, 0);
    /* the text last: a light read (store_generation_meta) finds every other field in the
     * record's first bytes and never touches the text's cache lines (key order is free in
     * msgpack maps: records written text-third by earlier versions read the same) */
    proto_w_map(w, 7);
    KU(w, "p", g->p); KU(w, "s", g->s);
    KI(w, "tokens", g->tokens); KF(w, "time_s", g->time_s); KS(w, "finish", g->finish);
    KU(w, "task", g->task);
    proto_w_key(w, "text"); proto_w_strn(w, g->text ? g->text : "", g->text ? g->text_len : 0);
    return inserted(put_writer(t, DB_GENERATIONS, k, 16, w, MDB_NOOVERWRITE));
}

/* The keys a light generation read decodes: all but the text's bytes (its length is read). */
static const char *const gen_meta_keys[] = {"p", "s", "text", "tokens", "time_s", "finish", "task", NULL};
_Static_assert(sizeof gen_meta_keys / sizeof *gen_meta_keys - 1 <= LIGHT_MAX_KEYS, "too many light keys");

/* Every field of a generation record but the text's bytes; m may be whole or light. */
static void gen_meta_from(const proto_val *m, void *out) {
    store_generation_meta *g = out;
    memset(g, 0, sizeof *g);
    g->p = (uint32_t)gu(m, "p"); g->s = (uint32_t)gu(m, "s");
    gv(m, "text", &g->text_len);
    g->tokens = gi(m, "tokens"); g->time_s = gf(m, "time_s", 0);
    gs(m, "finish", g->finish, sizeof g->finish);
    g->task = gu(m, "task");
}

/* The whole record: gen_meta_from's fields plus the text (a view into m, a whole record). */
static void gen_from(const proto_val *m, void *out) {
    store_generation *g = out;
    store_generation_meta x;
    gen_meta_from(m, &x);
    memset(g, 0, sizeof *g);
    g->p = x.p; g->s = x.s;
    g->text = gv(m, "text", &g->text_len);
    g->tokens = x.tokens; g->time_s = x.time_s;
    memcpy(g->finish, x.finish, sizeof g->finish);
    g->task = x.task;
}

int store_generation_get(store_txn *t, uint64_t job, uint32_t p, uint32_t s, store_generation *out) {
    uint8_t k[16];
    ps_key(k, job, p, s);
    return get_as(t, DB_GENERATIONS, k, 16, 1, gen_from, out);
}

static int gen_deliver(const proto_val *m, const each_ctx *c) {
    store_generation g;
    gen_from(m, &g);
    return c->fn.generation(c->job, &g, c->ctx);
}
int store_generations_each_txn(store_txn *t, uint64_t job, store_generation_fn fn, void *ctx) {
    each_ctx c = {DB_GENERATIONS, 1, job, gen_deliver, {.generation = fn}, ctx, NULL};
    return each_prefix(t, &c);
}
int store_generations_each(store *s, uint64_t job, store_generation_fn fn, void *ctx, char *err, size_t errlen) {
    each_ctx c = {DB_GENERATIONS, 1, job, gen_deliver, {.generation = fn}, ctx, NULL};
    return with_read(s, each_prefix, &c, err, errlen);
}

int store_generation_meta_get(store_txn *t, uint64_t job, uint32_t p, uint32_t s, store_generation_meta *out) {
    uint8_t k[16];
    ps_key(k, job, p, s);
    return get_light(t, DB_GENERATIONS, k, 16, gen_meta_keys, gen_meta_from, out);
}

static int gen_meta_deliver(const proto_val *m, const each_ctx *c) {
    store_generation_meta g;
    gen_meta_from(m, &g);
    return c->fn.generation_meta(c->job, &g, c->ctx);
}
int store_generations_meta_each_txn(store_txn *t, uint64_t job, store_generation_meta_fn fn, void *ctx) {
    each_ctx c = {DB_GENERATIONS, 1, job, gen_meta_deliver, {.generation_meta = fn}, ctx, gen_meta_keys};
    return each_prefix(t, &c);
}

/* ======================================================================= scores */

/* Encodes sc and puts it with LMDB flags (MDB_NOOVERWRITE for the idempotent insert, 0 to
 * overwrite). Returns put_writer's code: STORE_OK, 1 if the key existed under NOOVERWRITE, or < 0. */
static int score_write(store_txn *t, uint64_t job, const store_score *sc, unsigned flags) {
    uint8_t k[16];
    ps_key(k, job, sc->p, sc->s);
    /* the generation's time_s rides along (see store_score_meta): the aggregate then reads the
     * small score records only. Generations are never overwritten, so the copy stays true. */
    store_generation_meta gm;
    int rc = store_generation_meta_get(t, job, sc->p, sc->s, &gm);
    if (rc != STORE_OK && rc != STORE_ERR_NOTFOUND && rc != STORE_ERR_CORRUPT) return rc;
    int has_time = rc == STORE_OK;
    proto_writer *w = proto_writer_new(NULL, 0);
    int has_steps = sc->steps && sc->n_steps > 0;
    proto_w_map(w, 6 + (uint32_t)has_steps + (uint32_t)has_time);
    KU(w, "p", sc->p); KU(w, "s", sc->s);
    KS(w, "extracted", sc->extracted ? sc->extracted : ""); KS(w, "canonical", sc->canonical ? sc->canonical : "");
    KI(w, "correct", sc->correct ? 1 : 0);
    proto_w_key(w, "reward");
    if (isnan(sc->reward)) proto_w_nil(w); else proto_w_f64(w, sc->reward);
    if (has_time) KF(w, "time_s", gm.time_s);   /* NaN stays NaN (an f64) */
    if (has_steps) { /* f64 each (NaN included), only when there are any: old readers skip the key */
        proto_w_key(w, "steps");
        proto_w_array(w, sc->n_steps);
        for (uint32_t i = 0; i < sc->n_steps; i++) proto_w_f64(w, sc->steps[i]);
    }
    return put_writer(t, DB_SCORES, k, 16, w, flags);
}

int store_score_put(store_txn *t, uint64_t job, const store_score *sc) {
    return inserted(score_write(t, job, sc, MDB_NOOVERWRITE));
}

int store_score_replace(store_txn *t, uint64_t job, const store_score *sc) {
    int rc = score_write(t, job, sc, 0);
    return rc == 1 ? STORE_OK : rc;
}

/* The keys a light score read decodes (not extracted, not the steps). */
static const char *const score_meta_keys[] = {"p", "s", "canonical", "correct", "reward", "time_s", NULL};
_Static_assert(sizeof score_meta_keys / sizeof *score_meta_keys - 1 <= LIGHT_MAX_KEYS, "too many light keys");

/* The fields a score shares with its light view; m may be whole or light (canonical is then a
 * view that is not NUL-terminated: canonical_len). */
static void score_meta_from(const proto_val *m, void *out) {
    store_score_meta *x = out;
    memset(x, 0, sizeof *x);
    x->p = (uint32_t)gu(m, "p"); x->s = (uint32_t)gu(m, "s");
    x->canonical = gv(m, "canonical", &x->canonical_len);
    x->correct = gi(m, "correct") ? 1 : 0;
    x->reward = gf(m, "reward", NAN);
    const proto_val *tv = proto_get(m, "time_s");
    x->has_time_s = tv && (tv->type == PV_FLOAT || tv->type == PV_INT || tv->type == PV_UINT || tv->type == PV_NIL);
    x->time_s = x->has_time_s ? gf(m, "time_s", NAN) : NAN;
}

/* The whole record (m whole: extracted and canonical are NUL-terminated views into m). */
static void score_from(const proto_val *m, void *out) {
    store_score *sc = out;
    store_score_meta x;
    score_meta_from(m, &x);
    memset(sc, 0, sizeof *sc);
    sc->p = x.p; sc->s = x.s;
    sc->extracted = gv(m, "extracted", NULL); sc->canonical = x.canonical;
    sc->correct = x.correct;
    sc->reward = x.reward;
}

/* m's "steps" as a malloc'd array (NULL and 0 when absent, empty or not an array of numbers:
 * records written before steps were stored have none; nil entries read as NaN). */
static double *steps_from(const proto_val *m, uint32_t *n) {
    const proto_val *a = proto_get(m, "steps");
    *n = 0;
    if (!a || a->type != PV_ARRAY || a->v.arr.n == 0) return NULL;
    double *d = xmalloc(sizeof(double) * a->v.arr.n);
    for (uint32_t i = 0; i < a->v.arr.n; i++) {
        const proto_val *e = &a->v.arr.items[i];
        switch (e->type) {
        case PV_FLOAT: d[i] = e->v.f; break;
        case PV_INT: d[i] = (double)e->v.i; break;
        case PV_UINT: d[i] = (double)e->v.u; break;
        case PV_NIL: d[i] = NAN; break;
        default: free(d); return NULL;
        }
    }
    *n = a->v.arr.n;
    return d;
}

int store_score_get(store_txn *t, uint64_t job, uint32_t p, uint32_t s, store_score *out) {
    uint8_t k[16];
    ps_key(k, job, p, s);
    proto_msg *m;
    int rc = get_record(t, DB_SCORES, k, 16, 1, &m); /* kept by the txn: string views */
    if (rc) return rc;
    score_from(proto_root(m), out);
    double *d = steps_from(proto_root(m), &out->n_steps);
    if (d) { /* the txn owns it until it ends, like the string views */
        if (t->narrs == t->caparrs) {
            t->caparrs = t->caparrs ? t->caparrs * 2 : 16;
            t->arrs = xrealloc(t->arrs, t->caparrs * sizeof *t->arrs);
        }
        t->arrs[t->narrs++] = d;
        out->steps = d;
    }
    return STORE_OK;
}

static int score_deliver(const proto_val *m, const each_ctx *c) {
    store_score sc;
    score_from(m, &sc);
    double *d = steps_from(m, &sc.n_steps);
    sc.steps = d;
    int rc = c->fn.score(c->job, &sc, c->ctx);
    free(d); /* views live until the callback returns */
    return rc;
}
int store_scores_each_txn(store_txn *t, uint64_t job, store_score_fn fn, void *ctx) {
    each_ctx c = {DB_SCORES, 1, job, score_deliver, {.score = fn}, ctx, NULL};
    return each_prefix(t, &c);
}
int store_scores_each(store *s, uint64_t job, store_score_fn fn, void *ctx, char *err, size_t errlen) {
    each_ctx c = {DB_SCORES, 1, job, score_deliver, {.score = fn}, ctx, NULL};
    return with_read(s, each_prefix, &c, err, errlen);
}

int store_score_meta_get(store_txn *t, uint64_t job, uint32_t p, uint32_t s, store_score_meta *out) {
    uint8_t k[16];
    ps_key(k, job, p, s);
    return get_light(t, DB_SCORES, k, 16, score_meta_keys, score_meta_from, out);
}

static int score_meta_deliver(const proto_val *m, const each_ctx *c) {
    store_score_meta x;
    score_meta_from(m, &x);
    return c->fn.score_meta(c->job, &x, c->ctx);
}
int store_scores_meta_each_txn(store_txn *t, uint64_t job, store_score_meta_fn fn, void *ctx) {
    each_ctx c = {DB_SCORES, 1, job, score_meta_deliver, {.score_meta = fn}, ctx, score_meta_keys};
    return each_prefix(t, &c);
}

/* ======================================================================= stats */

void store_stats_free(store_stats *st) {
    if (!st) return;
    free(st->msgpack);
    st->msgpack = NULL;
    st->msgpack_len = 0;
}

int store_stats_put(store_txn *t, uint64_t job, const store_stats *st) {
    proto_writer *w = proto_writer_new(NULL, 0);
    proto_w_map(w, 5);
    KI(w, "final", st->final); KI(w, "updated_ms", st->updated_ms); KU(w, "samples", st->samples);
    KU(w, "task", st->task);
    proto_w_key(w, "stats");
    if (st->msgpack && st->msgpack_len) proto_w_raw(w, st->msgpack, st->msgpack_len);
    else proto_w_map(w, 0);
    return put_id(t, DB_STATS, job, w);
}

/* Copies the stats map (malloc'ed: store_stats_free). */
static void stats_from(const proto_val *m, void *out) {
    store_stats *st = out;
    st->final = (int32_t)gi(m, "final");
    st->updated_ms = gi(m, "updated_ms");
    st->samples = gu(m, "samples");
    st->task = gu(m, "task");
    st->msgpack = val_copy(proto_get(m, "stats"), &st->msgpack_len);
}

int store_stats_get_txn(store_txn *t, uint64_t job, store_stats *out) {
    memset(out, 0, sizeof *out);
    return get_id(t, DB_STATS, job, stats_from, out);
}

typedef struct { uint64_t job; store_stats *out; } stats_rd;
static int stats_rd_fn(store_txn *t, void *ctx) {
    stats_rd *c = ctx;
    return store_stats_get_txn(t, c->job, c->out);
}
int store_stats_get(store *s, uint64_t job, store_stats *out, char *err, size_t errlen) {
    stats_rd c = {job, out};
    memset(out, 0, sizeof *out);
    int rc = with_read(s, stats_rd_fn, &c, err, errlen);
    if (rc == STORE_ERR_NOTFOUND) {
        char id[24];
        store_job_id_format(job, id, sizeof id);
        util_err(err, errlen, "no stats for job %s yet", id);
    }
    return rc;
}

/* ======================================================================= workers */

int store_worker_put(store_txn *t, const store_worker *x) {
    proto_writer *w = proto_writer_new(NULL, 0);
    proto_w_map(w, 9);
    KS(w, "id", x->id); KS(w, "role", x->role); KS(w, "host", x->host); KI(w, "pid", x->pid);
    KU(w, "credit", x->credit); KU(w, "leased", x->leased);
    KI(w, "registered_ms", x->registered_ms); KI(w, "last_seen_ms", x->last_seen_ms);
    KS(w, "state", x->state);
    return put_writer(t, DB_WORKERS, x->id, strlen(x->id), w, 0);
}

static void worker_from(const proto_val *m, void *out) {
    store_worker *x = out;
    memset(x, 0, sizeof *x);
    gs(m, "id", x->id, sizeof x->id); gs(m, "role", x->role, sizeof x->role); gs(m, "host", x->host, sizeof x->host);
    x->pid = gi(m, "pid"); x->credit = (uint32_t)gu(m, "credit"); x->leased = (uint32_t)gu(m, "leased");
    x->registered_ms = gi(m, "registered_ms"); x->last_seen_ms = gi(m, "last_seen_ms");
    gs(m, "state", x->state, sizeof x->state);
}

int store_worker_get(store_txn *t, const char *id, store_worker *out) {
    size_t n = strlen(id);
    if (n == 0) return STORE_ERR_NOTFOUND;
    return get_as(t, DB_WORKERS, id, n, 0, worker_from, out);
}

static int worker_deliver(const proto_val *m, const each_ctx *c) {
    store_worker x;
    worker_from(m, &x);
    return c->fn.worker(&x, c->ctx);
}
int store_workers_each_txn(store_txn *t, store_worker_fn fn, void *ctx) {
    each_ctx c = {DB_WORKERS, 0, 0, worker_deliver, {.worker = fn}, ctx, NULL};
    return each_prefix(t, &c);
}
