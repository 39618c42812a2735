/* tests/unit/unit.h — the tiny test framework every C unit test uses.
 *
 *   TEST(name) { EXPECT(x == 1); EXPECT_NEAR(a, b, 1e-6); ... }
 *   int main(void) { RUN(name); ...; return unit_summary(); }
 *
 * Each test prints "ok NAME" or "FAIL NAME" (with the failing expectations above it);
 * unit_skip("why") inside a test marks it skipped ("skip NAME: why"). unit_summary() prints
 * "unit: N passed, N failed, N skipped" — tests/run.sh adds these lines up — and returns the
 * exit status. Tests read shared data from $THINKFAST_DATA (default ../shared/data).
 * Scratch folders: unit_tmpdir("tag") makes /tmp/tf_tag_XXXXXX, unit_rmrf(dir) removes it.
 */
#ifndef THINKFAST_UNIT_H
#define THINKFAST_UNIT_H

#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int unit_passed, unit_failed, unit_skipped;
static int unit_cur_failed, unit_cur_skipped;
static char unit_skip_why[256];

#define TEST(name) static void test_##name(void)
#define RUN(name) do { \
    unit_cur_failed = 0; unit_cur_skipped = 0; test_##name(); \
    if (unit_cur_skipped && !unit_cur_failed) { unit_skipped++; printf("skip %s: %s\n", #name, unit_skip_why); } \
    else if (unit_cur_failed) { unit_failed++; printf("FAIL %s\n", #name); } \
    else { unit_passed++; printf("ok %s\n", #name); } \
    fflush(stdout); } while (0)

#define EXPECT(cond) do { if (!(cond)) { unit_cur_failed++; \
    printf("  %s:%d: expected %s\n", __FILE__, __LINE__, #cond); } } while (0)
#define EXPECT_MSG(cond, ...) do { if (!(cond)) { unit_cur_failed++; \
    printf("  %s:%d: expected %s: ", __FILE__, __LINE__, #cond); printf(__VA_ARGS__); printf("\n"); } } while (0)
#define EXPECT_EQ_INT(a, b) do { long long ua_ = (long long)(a), ub_ = (long long)(b); if (ua_ != ub_) { \
    unit_cur_failed++; printf("  %s:%d: %s == %s: %lld != %lld\n", __FILE__, __LINE__, #a, #b, ua_, ub_); } } while (0)
#define EXPECT_EQ_STR(a, b) do { const char *ua_ = (a), *ub_ = (b); \
    if (!ua_ || !ub_ || strcmp(ua_, ub_) != 0) { unit_cur_failed++; \
    printf("  %s:%d: %s == %s: \"%s\" != \"%s\"\n", __FILE__, __LINE__, #a, #b, ua_ ? ua_ : "(null)", ub_ ? ub_ : "(null)"); } } while (0)
#define EXPECT_NEAR(a, b, tol) do { double ua_ = (double)(a), ub_ = (double)(b); \
    if (!(fabs(ua_ - ub_) <= (tol))) { unit_cur_failed++; \
    printf("  %s:%d: %s ~= %s: %.10g vs %.10g (tol %g)\n", __FILE__, __LINE__, #a, #b, ua_, ub_, (double)(tol)); } } while (0)

static inline void unit_skip(const char *why) {
    unit_cur_skipped = 1;
    snprintf(unit_skip_why, sizeof unit_skip_why, "%s", why);
}

/* Path under the shared data folder; returns a static buffer. */
static inline const char *unit_data_path(const char *rel) {
    static char buf[4096];
    const char *d = getenv("THINKFAST_DATA");
    snprintf(buf, sizeof buf, "%s/%s", d && *d ? d : "../shared/data", rel);
    return buf;
}

/* Creates a fresh folder /tmp/tf_<tag>_XXXXXX (mkdtemp, mode 0700); returns its path, malloc'd
 * (caller frees). A test cannot go on without it, so on failure it prints the error and aborts. */
static inline char *unit_tmpdir(const char *tag) {
    size_t n = strlen("/tmp/tf__XXXXXX") + strlen(tag) + 1;
    char *d = malloc(n);
    if (!d) { fprintf(stderr, "unit_tmpdir(%s): out of memory\n", tag); abort(); }
    snprintf(d, n, "/tmp/tf_%s_XXXXXX", tag);
    if (!mkdtemp(d)) { fprintf(stderr, "unit_tmpdir: mkdtemp %s: %s\n", d, strerror(errno)); abort(); }
    return d;
}

static inline int unit_rmrf_one_(const char *path, const struct stat *st, int type, struct FTW *ftw) {
    (void)st; (void)type; (void)ftw;
    if (remove(path) != 0 && errno != ENOENT)
        fprintf(stderr, "unit_rmrf: remove %s: %s\n", path, strerror(errno));
    return 0; /* keep going, like rm -rf */
}

/* Removes the tree at dir (depth first, symlinks removed not followed; no shell, so any
 * characters in the path are safe). A NULL or missing dir is ignored; other failures are
 * printed to stderr and the rest of the tree is still removed. */
static inline void unit_rmrf(const char *dir) {
    if (!dir || !*dir) return;
    if (nftw(dir, unit_rmrf_one_, 16, FTW_DEPTH | FTW_PHYS) != 0 && errno != ENOENT)
        fprintf(stderr, "unit_rmrf: %s: %s\n", dir, strerror(errno));
}

static inline int unit_summary(void) {
    printf("unit: %d passed, %d failed, %d skipped\n", unit_passed, unit_failed, unit_skipped);
    return unit_failed ? 1 : 0;
}

#endif
