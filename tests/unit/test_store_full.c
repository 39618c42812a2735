/* tests/unit/test_store_full.c — a full store is an error, not corruption (DESIGN.md,
 * reliability): a map that reached its --map-max-mb limit and a file system that refuses to
 * extend data.mdb (simulated with RLIMIT_FSIZE, which makes the kernel answer EFBIG / short
 * writes exactly like a full disk) both fail the write whole with STORE_ERR_MAP_FULL /
 * STORE_ERR_DISK_FULL and a message naming what is full; what was committed before is intact
 * (counted after reopening), and the same write succeeds once there is room.
 */
#include "unit.h"

#include "common/util.h"
#include "store/store.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* Writes generations [first, first + n) of job 1 (3 KB texts: overflow pages, fills fast). */
typedef struct { uint32_t first, n; } fill_ctx;
static int fill(store_txn *t, void *vctx) {
    fill_ctx *c = vctx;
    static char text[3000];
    memset(text, 'y', sizeof text);
    for (uint32_t i = c->first; i < c->first + c->n; i++) {
        store_generation g = {.p = i / 16, .s = i % 16, .text = text, .text_len = sizeof text, .tokens = i};
        int rc = store_generation_put(t, 1, &g);
        if (rc < 0) return rc;
    }
    return STORE_OK;
}

typedef struct { uint32_t n; uint64_t sum; int bad; } counted;
static int count_cb(uint64_t job, const store_generation *g, void *ctx) {
    counted *c = ctx;
    c->n++;
    c->sum += (uint64_t)g->tokens;
    if (g->text_len != 3000 || g->p * 16 + g->s != (uint32_t)g->tokens) c->bad++;
    return 0;
}

static counted count_store(const char *dir) {
    counted c = {0, 0, 0};
    store *s = NULL;
    char err[512] = "";
    if (store_open(dir, 1, 0, &s, err, sizeof err) != STORE_OK) { c.bad = -1; printf("  reopen: %s\n", err); return c; }
    if (store_generations_each(s, 1, count_cb, &c, err, sizeof err) != STORE_OK) c.bad = -2;
    store_close(&s);
    return c;
}

TEST(map_limit_is_full_not_corrupt) {
    char *d = unit_tmpdir("sfull");
    store *s = NULL;
    char err[512] = "";
    EXPECT(store_open(d, 0, 256 << 10, &s, err, sizeof err) == STORE_OK);
    if (!s) { free(d); return; }
    store_set_map_max(s, 2u << 20);
    EXPECT_EQ_INT(store_map_max(s), 2u << 20);
    uint32_t committed = 0;
    int rc = STORE_OK;
    for (int i = 0; i < 1000 && rc == STORE_OK; i++) {
        fill_ctx c = {committed, 20};
        err[0] = 0;
        rc = store_write(s, fill, &c, err, sizeof err);
        if (rc == STORE_OK) committed += 20;
    }
    EXPECT_EQ_INT(rc, STORE_ERR_MAP_FULL);
    EXPECT(store_err_is_full(rc));
    EXPECT_MSG(strstr(err, "limit") && strstr(err, "2 MiB"), "err: %s", err);
    EXPECT_EQ_INT(store_map_bytes(s), 2u << 20);
    EXPECT_MSG(committed > 100 && committed < 700, "committed %u", committed);
    /* the store stays usable: a read transaction sees exactly what was committed */
    counted c0 = {0, 0, 0};
    EXPECT(store_generations_each(s, 1, count_cb, &c0, err, sizeof err) == STORE_OK);
    EXPECT_EQ_INT(c0.n, committed);
    /* a second try fails the same way (no growth past the limit, nothing partial) */
    fill_ctx again = {committed, 20};
    EXPECT_EQ_INT(store_write(s, fill, &again, err, sizeof err), STORE_ERR_MAP_FULL);
    /* the headroom probe agrees, and changes nothing */
    EXPECT_EQ_INT(store_room_check(s, 256 << 10, err, sizeof err), STORE_ERR_MAP_FULL);
    EXPECT_MSG(strstr(err, "limit") != NULL, "err: %s", err);
    store_set_map_max(s, 4u << 20);
    EXPECT_MSG(store_room_check(s, 256 << 10, err, sizeof err) == STORE_OK, "%s", err);
    store_set_map_max(s, 2u << 20);
    counted cp = {0, 0, 0};
    EXPECT(store_generations_each(s, 1, count_cb, &cp, err, sizeof err) == STORE_OK);
    EXPECT_EQ_INT(cp.n, committed);
    store_close(&s);
    counted c1 = count_store(d);
    EXPECT_EQ_INT(c1.bad, 0);
    EXPECT_EQ_INT(c1.n, committed);
    EXPECT_EQ_INT(c1.sum, (uint64_t)committed * (committed - 1) / 2);

    /* reopen with a larger limit: the same write now succeeds */
    EXPECT(store_open(d, 0, 256 << 10, &s, err, sizeof err) == STORE_OK);
    if (s) {
        store_set_map_max(s, 16u << 20);
        fill_ctx more = {committed, 200};
        rc = store_write(s, fill, &more, err, sizeof err);
        EXPECT_MSG(rc == STORE_OK, "%s", err);
        if (rc == STORE_OK) committed += 200;
        store_close(&s);
    }
    counted c2 = count_store(d);
    EXPECT_EQ_INT(c2.bad, 0);
    EXPECT_EQ_INT(c2.n, committed);
    unit_rmrf(d);
    free(d);
}

TEST(limit_below_current_map_stops_growth) {
    char *d = unit_tmpdir("sfull");
    store *s = NULL;
    char err[512] = "";
    EXPECT(store_open(d, 0, 1 << 20, &s, err, sizeof err) == STORE_OK);
    if (!s) { free(d); return; }
    store_set_map_max(s, 512 << 10);   /* below the 1 MiB map: no growth at all */
    EXPECT_EQ_INT(store_grow(s, err, sizeof err), STORE_ERR_MAP_FULL);
    EXPECT_MSG(strstr(err, "limit") != NULL, "err: %s", err);
    EXPECT_EQ_INT(store_map_bytes(s), 1 << 20);
    store_set_map_max(s, 0);           /* unlimited again */
    EXPECT_EQ_INT(store_grow(s, err, sizeof err), STORE_OK);
    EXPECT_EQ_INT(store_map_bytes(s), 2 << 20);
    store_close(&s);
    unit_rmrf(d);
    free(d);
}

/* The file system refuses to extend data.mdb: RLIMIT_FSIZE gives the same EFBIG / short write
 * a full disk gives (SIGXFSZ ignored, as bin/broker does). */
TEST(disk_full_is_full_not_corrupt) {
    struct rlimit old;
    if (getrlimit(RLIMIT_FSIZE, &old) != 0 || old.rlim_max != RLIM_INFINITY) { unit_skip("cannot change RLIMIT_FSIZE"); return; }
    char *d = unit_tmpdir("sfull");
    store *s = NULL;
    char err[512] = "";
    EXPECT(store_open(d, 0, 64u << 20, &s, err, sizeof err) == STORE_OK);   /* map never the limit */
    if (!s) { free(d); return; }
    uint32_t committed = 0;
    fill_ctx first = {0, 40};
    EXPECT(store_write(s, fill, &first, err, sizeof err) == STORE_OK);
    committed = 40;
    char path[512];
    snprintf(path, sizeof path, "%s/data.mdb", d);
    struct stat st;
    EXPECT(stat(path, &st) == 0);
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = {(rlim_t)st.st_size + (1u << 20), old.rlim_max};   /* 1 MiB more */
    EXPECT(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    int rc = STORE_OK;
    for (int i = 0; i < 1000 && rc == STORE_OK; i++) {
        fill_ctx c = {committed, 20};
        err[0] = 0;
        rc = store_write(s, fill, &c, err, sizeof err);
        if (rc == STORE_OK) committed += 20;
    }
    setrlimit(RLIMIT_FSIZE, &old);
    if (getenv("TF_DEBUG")) printf("  disk full: %s\n", err);
    EXPECT_MSG(rc == STORE_ERR_DISK_FULL, "rc %d: %s", rc, err);
    EXPECT(store_err_is_full(rc));
    EXPECT_MSG(strstr(err, "file system full") && strstr(err, "data.mdb"), "err: %s", err);
    EXPECT_MSG(committed > 40 && committed < 1000, "committed %u", committed);
    /* room again: the same write goes through, nothing lost or duplicated */
    fill_ctx c = {committed, 20};
    rc = store_write(s, fill, &c, err, sizeof err);
    EXPECT_MSG(rc == STORE_OK, "after room: %s", err);
    if (rc == STORE_OK) committed += 20;
    store_close(&s);
    signal(SIGXFSZ, prev);
    counted cc = count_store(d);
    EXPECT_EQ_INT(cc.bad, 0);
    EXPECT_EQ_INT(cc.n, committed);
    EXPECT_EQ_INT(cc.sum, (uint64_t)committed * (committed - 1) / 2);
    unit_rmrf(d);
    free(d);
}

TEST(full_codes) {
    EXPECT(store_err_is_full(STORE_ERR_MAP_FULL));
    EXPECT(store_err_is_full(STORE_ERR_DISK_FULL));
    EXPECT(!store_err_is_full(STORE_ERR_IO));
    EXPECT(!store_err_is_full(STORE_OK));
    EXPECT_EQ_STR(store_strerror(STORE_ERR_DISK_FULL), "file system full");
}

int main(void) {
    RUN(full_codes);
    RUN(map_limit_is_full_not_corrupt);
    RUN(limit_below_current_map_stops_growth);
    RUN(disk_full_is_full_not_corrupt);
    return unit_summary();
}
