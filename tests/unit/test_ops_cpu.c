/* tests/unit/test_ops_cpu.c — every CPU op against a naive double-precision reference on
 * random inputs; Philox known-answer vectors; chunked SSD scan == recurrent scan; sampling
 * statistics and filter exclusions.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/ops.h"
#include "kernels/philox.h"
#include "tests/unit/unit.h"

static uint64_t rng_state = 0x1234567;
static double urand(void) { /* xorshift64*, [0,1) */
    rng_state ^= rng_state >> 12; rng_state ^= rng_state << 25; rng_state ^= rng_state >> 27;
    return (double)((rng_state * 0x2545F4914F6CDD1DULL) >> 11) * (1.0 / 9007199254740992.0);
}
static float frand(float a) { return (float)((urand() * 2 - 1) * a); }
static float *rvec(size_t n, float a) {
    float *v = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) v[i] = frand(a);
    return v;
}
/* max |a-b| / (atol + rtol |b|) over n; <= 1 passes */
static double worst(const float *a, const double *b, size_t n, double atol, double rtol, size_t *at) {
    double w = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]) / (atol + rtol * fabs(b[i]));
        if (!(e <= w)) { w = e; if (at) *at = i; }
    }
    return w;
}
#define EXPECT_CLOSE(a, b, n, atol, rtol) do { size_t at_ = 0; double w_ = worst((a), (b), (n), (atol), (rtol), &at_); \
    EXPECT_MSG(w_ <= 1.0, "first worst mismatch at %zu: %.8g vs %.8g", at_, (double)(a)[at_], (b)[at_]); } while (0)

static op_backend *be;

TEST(philox_known_answers) {
    /* Random123 kat_vectors, philox4x32 10 */
    philox4x32 c0 = {{0, 0, 0, 0}};
    philox4x32 r = philox4x32_10(c0, 0, 0);
    EXPECT_EQ_INT(r.v[0], 0x6627e8d5u); EXPECT_EQ_INT(r.v[1], 0xe169c58du);
    EXPECT_EQ_INT(r.v[2], 0xbc57ac4cu); EXPECT_EQ_INT(r.v[3], 0x9b00dbd8u);
    philox4x32 c1 = {{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}};
    r = philox4x32_10(c1, 0xffffffffu, 0xffffffffu);
    EXPECT_EQ_INT(r.v[0], 0x408f276du); EXPECT_EQ_INT(r.v[1], 0x41c83b0eu);
    EXPECT_EQ_INT(r.v[2], 0xa20bc7c6u); EXPECT_EQ_INT(r.v[3], 0x6d5451fdu);
    philox4x32 c2 = {{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}};
    r = philox4x32_10(c2, 0xa4093822u, 0x299f31d0u);
    EXPECT_EQ_INT(r.v[0], 0xd16cfe09u); EXPECT_EQ_INT(r.v[1], 0x94fdccebu);
    EXPECT_EQ_INT(r.v[2], 0x5001e420u); EXPECT_EQ_INT(r.v[3], 0x24126ea1u);
    /* uniform: in [0,1), mean ~ 0.5, keyed by every argument */
    double sum = 0;
    int n = 20000;
    for (int i = 0; i < n; i++) {
        float u = philox_uniform(42, 3, (uint32_t)i, 7);
        EXPECT(u >= 0.0f && u < 1.0f);
        sum += u;
    }
    EXPECT_NEAR(sum / n, 0.5, 0.01);
    float a = philox_uniform(1, 2, 3, 4);
    EXPECT(a == philox_uniform(1, 2, 3, 4));
    EXPECT(a != philox_uniform(2, 2, 3, 4));
    EXPECT(a != philox_uniform(1, 3, 3, 4));
    EXPECT(a != philox_uniform(1, 2, 4, 4));
    EXPECT(a != philox_uniform(1, 2, 3, 5));
    EXPECT(a != philox_uniform(1ull << 32 | 1, 2, 3, 4));
}

TEST(matmul_vs_naive) {
    int shapes[][3] = {{1, 64, 96}, {7, 33, 17}, {32, 128, 72}, {100, 40, 24}};
    for (int s = 0; s < 4; s++) {
        int T = shapes[s][0], K = shapes[s][1], N = shapes[s][2];
        float *x = rvec((size_t)T * K, 1), *w = rvec((size_t)N * K, 1), *y = rvec((size_t)T * N, 1);
        double *ref = malloc(sizeof(double) * T * N);
        for (int acc = 0; acc < 2; acc++) {
            for (int t = 0; t < T; t++)
                for (int n = 0; n < N; n++) {
                    double d = acc ? y[t * N + n] : 0.0;
                    for (int k = 0; k < K; k++) d += (double)x[t * K + k] * w[n * K + k];
                    ref[t * N + n] = d;
                }
            be->matmul(be, y, x, w, T, K, N, acc);
            EXPECT_CLOSE(y, ref, (size_t)T * N, 1e-4, 1e-4);
        }
        float *y32 = malloc(sizeof(float) * T * N);
        be->matmul_f32out(be, y32, x, w, T, K, N);
        for (int i = 0; i < T * N; i++) {
            double d = 0;
            for (int k = 0; k < K; k++) d += (double)x[(i / N) * K + k] * w[(i % N) * K + k];
            ref[i] = d;
        }
        EXPECT_CLOSE(y32, ref, (size_t)T * N, 1e-4, 1e-4);
        free(x); free(w); free(y); free(ref); free(y32);
    }
}

TEST(small_matmul_is_batch_invariant) {
    /* a row's result is bit-identical whatever the number of rows in the call (decode steps) */
    int K = 77, N = 45, T = 13;
    float *x = rvec((size_t)T * K, 1), *w = rvec((size_t)N * K, 1);
    float *all = malloc(sizeof(float) * T * N), *one = malloc(sizeof(float) * N);
    be->matmul(be, all, x, w, T, K, N, 0);
    int same = 1;
    for (int t = 0; t < T; t++) {
        be->matmul(be, one, x + (size_t)t * K, w, 1, K, N, 0);
        same &= memcmp(one, all + (size_t)t * N, sizeof(float) * N) == 0;
    }
    EXPECT(same);
    free(x); free(w); free(all); free(one);
    /* large enough for the thread pool to split the output columns */
    K = 300; N = 1001; T = 5;
    x = rvec((size_t)T * K, 1); w = rvec((size_t)N * K, 1);
    all = malloc(sizeof(float) * T * N); one = malloc(sizeof(float) * N);
    be->matmul(be, all, x, w, T, K, N, 0);
    same = 1;
    for (int t = 0; t < T; t++) {
        be->matmul(be, one, x + (size_t)t * K, w, 1, K, N, 0);
        same &= memcmp(one, all + (size_t)t * N, sizeof(float) * N) == 0;
    }
    EXPECT(same);
    double *ref = malloc(sizeof(double) * T * N);
    for (int i = 0; i < T * N; i++) {
        double d = 0;
        for (int k = 0; k < K; k++) d += (double)x[(i / N) * K + k] * w[(i % N) * K + k];
        ref[i] = d;
    }
    EXPECT_CLOSE(all, ref, (size_t)T * N, 1e-4, 1e-4);
    free(x); free(w); free(all); free(one); free(ref);
}

TEST(norms_swiglu_embed_add) {
    int T = 5, D = 48;
    float eps = 1e-5f;
    float *x = rvec((size_t)T * D, 2), *w = rvec(D, 1), *o = malloc(sizeof(float) * T * D);
    double *ref = malloc(sizeof(double) * T * D * 2);
    be->rmsnorm(be, o, x, w, T, D, eps);
    for (int t = 0; t < T; t++) {
        double ss = 0;
        for (int i = 0; i < D; i++) ss += (double)x[t * D + i] * x[t * D + i];
        double r = 1.0 / sqrt(ss / D + eps);
        for (int i = 0; i < D; i++) ref[t * D + i] = w[i] * x[t * D + i] * r;
    }
    EXPECT_CLOSE(o, ref, (size_t)T * D, 1e-5, 1e-5);
    /* aliasing out == x */
    float *x2 = malloc(sizeof(float) * T * D);
    memcpy(x2, x, sizeof(float) * T * D);
    be->rmsnorm(be, x2, x2, w, T, D, eps);
    EXPECT_CLOSE(x2, ref, (size_t)T * D, 1e-5, 1e-5);
    /* add_rmsnorm */
    float *res = rvec((size_t)T * D, 1), *dx = rvec((size_t)T * D, 1);
    double *rres = malloc(sizeof(double) * T * D);
    for (int i = 0; i < T * D; i++) rres[i] = (double)res[i] + dx[i];
    be->add_rmsnorm(be, res, dx, o, w, T, D, eps);
    EXPECT_CLOSE(res, rres, (size_t)T * D, 1e-6, 1e-6);
    for (int t = 0; t < T; t++) {
        double ss = 0;
        for (int i = 0; i < D; i++) ss += rres[t * D + i] * rres[t * D + i];
        double r = 1.0 / sqrt(ss / D + eps);
        for (int i = 0; i < D; i++) ref[t * D + i] = w[i] * rres[t * D + i] * r;
    }
    EXPECT_CLOSE(o, ref, (size_t)T * D, 1e-5, 1e-5);
    /* swiglu */
    int F = 24;
    float *gu = rvec((size_t)T * 2 * F, 4), *sw = malloc(sizeof(float) * T * F);
    be->swiglu(be, sw, gu, T, F);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < F; i++) {
            double g = gu[t * 2 * F + i], u = gu[t * 2 * F + F + i];
            ref[t * F + i] = g / (1 + exp(-g)) * u;
        }
    EXPECT_CLOSE(sw, ref, (size_t)T * F, 1e-6, 1e-5);
    /* embed */
    int V = 11;
    float *tab = rvec((size_t)V * D, 1);
    int32_t ids[5] = {3, 0, 10, 3, 7};
    be->embed(be, o, tab, ids, T, D);
    int ok = 1;
    for (int t = 0; t < T; t++) ok &= memcmp(o + t * D, tab + ids[t] * D, sizeof(float) * D) == 0;
    EXPECT(ok);
    /* add */
    float a[4] = {1, 2, 3, 4}, bb[4] = {0.5f, -2, 1, 0};
    be->add(be, a, bb, 4);
    EXPECT(a[0] == 1.5f && a[1] == 0 && a[2] == 4 && a[3] == 4);
    free(x); free(w); free(o); free(ref); free(x2); free(res); free(dx); free(rres); free(gu); free(sw); free(tab);
}

/* qkv_rope_write: q|k|v rows in one matrix; rotated q out, rotated k and v into cache slots
 * (slot -1 = padding: nothing stored), partial rotary and rot_dim 0 (no rotation). */
static void qkv_rope_case(int rot) {
    int T = 4, Hq = 4, Hkv = 2, hd = 16, qd = Hq * hd, kd = Hkv * hd, row = qd + 2 * kd, n_slots = 9;
    float *qkv = rvec((size_t)T * row, 1), *q = malloc(sizeof(float) * T * qd);
    float *kc = malloc(sizeof(float) * n_slots * kd), *vc = malloc(sizeof(float) * n_slots * kd);
    for (int i = 0; i < n_slots * kd; i++) kc[i] = vc[i] = 777.0f; /* poison */
    for (int i = 0; i < T * qd; i++) q[i] = 777.0f;
    float inv[8];
    for (int i = 0; i < rot / 2; i++) inv[i] = (float)pow(10000.0, -2.0 * i / (rot ? rot : 1));
    int32_t pos[4] = {0, 5, 17, 1000}, slot[4] = {7, 2, -1, 0};
    be->qkv_rope_write(be, q, qkv, pos, inv, kc, vc, slot, T, Hq, Hkv, hd, rot);
    double *ref = malloc(sizeof(double) * T * row);
    for (int t = 0; t < T; t++)
        for (int h = 0; h < Hq + Hkv; h++) { /* q heads then k heads: rotated */
            const float *v = qkv + (size_t)t * row + (size_t)h * hd;
            double *r = ref + (size_t)t * row + (size_t)h * hd;
            for (int i = 0; i < hd; i++) r[i] = v[i];
            for (int i = 0; i < rot / 2; i++) {
                double ang = (double)pos[t] * inv[i];
                r[i] = v[i] * cos(ang) - v[i + rot / 2] * sin(ang);
                r[i + rot / 2] = v[i + rot / 2] * cos(ang) + v[i] * sin(ang);
            }
        }
    double *rq = malloc(sizeof(double) * T * qd);
    for (int t = 0; t < T; t++) for (int i = 0; i < qd; i++) rq[t * qd + i] = ref[(size_t)t * row + i];
    EXPECT_CLOSE(q, rq, (size_t)T * qd, 2e-4, 1e-4);
    int ok = 1, untouched = 1;
    for (int sl = 0; sl < n_slots; sl++) {
        int t = -1;
        for (int i = 0; i < T; i++) if (slot[i] == sl) t = i;
        for (int i = 0; i < kd; i++) {
            if (t < 0) { untouched &= kc[sl * kd + i] == 777.0f && vc[sl * kd + i] == 777.0f; continue; }
            ok &= fabs(kc[sl * kd + i] - ref[(size_t)t * row + qd + i]) <= 1e-4 + 2e-4 * fabs(ref[(size_t)t * row + qd + i]);
            ok &= vc[sl * kd + i] == qkv[(size_t)t * row + qd + kd + i];
        }
    }
    EXPECT(ok);
    EXPECT(untouched);
    free(qkv); free(q); free(kc); free(vc); free(ref); free(rq);
}

TEST(qkv_rope_write_partial_rotate_half) {
    qkv_rope_case(8);  /* partial rotary: 8 of 16 dims */
    qkv_rope_case(16); /* full */
    qkv_rope_case(0);  /* none */
}

/* two sequences: seq0 prefill of len0 tokens from position 0, seq1 decoding 3 tokens at
 * positions len1-3..len1-1 (its earlier tokens already in the cache); pages scrambled. */
static void attention_case(int Hq, int Hkv, int hd, int ps, int len0, int len1) {
    int max_pages = (len1 > len0 ? len1 : len0) / ps + 2, n_pages = 2 * max_pages + 6;
    int len[2] = {len0, len1}, start[2] = {0, len1 - 3};
    float *kc = calloc((size_t)n_pages * ps * Hkv * hd, sizeof(float)), *vc = calloc((size_t)n_pages * ps * Hkv * hd, sizeof(float));
    int32_t *bt = malloc(sizeof(int32_t) * 2 * max_pages);
    int *perm = malloc(sizeof(int) * n_pages);
    for (int i = 0; i < n_pages; i++) perm[i] = i;
    for (int i = n_pages - 1; i > 0; i--) { int j = (int)(urand() * (i + 1)); int t = perm[i]; perm[i] = perm[j]; perm[j] = t; }
    for (int i = 0; i < 2 * max_pages; i++) bt[i] = perm[i];
    float *K[2], *Vv[2];
    for (int s = 0; s < 2; s++) {
        K[s] = rvec((size_t)len[s] * Hkv * hd, 1);
        Vv[s] = rvec((size_t)len[s] * Hkv * hd, 1);
    }
    /* write everything through qkv_rope_write (no rotation; q rows are ignored here) */
    int kd = Hkv * hd, qd = Hq * hd, row = qd + 2 * kd;
    for (int s = 0; s < 2; s++) {
        int32_t *sm = malloc(sizeof(int32_t) * len[s]), *ps0 = calloc((size_t)len[s], sizeof(int32_t));
        float *qkv = rvec((size_t)len[s] * row, 1), *qo = malloc(sizeof(float) * (size_t)len[s] * qd);
        for (int j = 0; j < len[s]; j++) {
            sm[j] = bt[s * max_pages + j / ps] * ps + j % ps;
            memcpy(qkv + (size_t)j * row + qd, K[s] + (size_t)j * kd, sizeof(float) * kd);
            memcpy(qkv + (size_t)j * row + qd + kd, Vv[s] + (size_t)j * kd, sizeof(float) * kd);
        }
        be->qkv_rope_write(be, qo, qkv, ps0, NULL, kc, vc, sm, len[s], Hq, Hkv, hd, 0);
        free(sm); free(ps0); free(qkv); free(qo);
    }
    int T = (len[0] - start[0]) + (len[1] - start[1]);
    int32_t cu[3] = {0, len[0] - start[0], T}, *pos = malloc(sizeof(int32_t) * T);
    int t = 0;
    for (int s = 0; s < 2; s++) for (int j = start[s]; j < len[s]; j++) pos[t++] = j;
    float *q = rvec((size_t)T * Hq * hd, 1), *out = malloc(sizeof(float) * T * Hq * hd);
    float scale = 1.0f / sqrtf((float)hd);
    be->attention(be, out, q, kc, vc, bt, max_pages, cu, pos, 2, T, Hq, Hkv, hd, ps, scale);
    double *ref = malloc(sizeof(double) * T * Hq * hd);
    for (int s = 0; s < 2; s++)
        for (int tt = cu[s]; tt < cu[s + 1]; tt++)
            for (int h = 0; h < Hq; h++) {
                int kh = h / (Hq / Hkv), n = pos[tt] + 1;
                double sc[512], mx = -1e300, sum = 0;
                for (int j = 0; j < n; j++) {
                    double d = 0;
                    for (int i = 0; i < hd; i++) d += (double)q[(tt * Hq + h) * hd + i] * K[s][(j * Hkv + kh) * hd + i];
                    sc[j] = d * scale;
                    if (sc[j] > mx) mx = sc[j];
                }
                for (int j = 0; j < n; j++) { sc[j] = exp(sc[j] - mx); sum += sc[j]; }
                for (int i = 0; i < hd; i++) {
                    double a = 0;
                    for (int j = 0; j < n; j++) a += sc[j] * Vv[s][(j * Hkv + kh) * hd + i];
                    ref[(tt * Hq + h) * hd + i] = a / sum;
                }
            }
    EXPECT_CLOSE(out, ref, (size_t)T * Hq * hd, 1e-5, 1e-4);
    free(kc); free(vc); free(q); free(out); free(ref); free(bt); free(perm); free(pos);
    for (int s = 0; s < 2; s++) { free(K[s]); free(Vv[s]); }
}

TEST(paged_attention_vs_dense) {
    attention_case(4, 2, 8, 4, 21, 40);     /* small: serial */
    attention_case(8, 2, 32, 16, 150, 300); /* large: on the thread pool */
}

TEST(conv1d_state_and_split) {
    int C = 10, Kc = 4, L = 9;
    float *x = rvec((size_t)L * C, 1), *w = rvec((size_t)C * Kc, 1), *bias = rvec(C, 0.5f);
    float *st0 = rvec((size_t)C * (Kc - 1), 1);
    /* reference over [state, x] */
    double *ref = malloc(sizeof(double) * L * C);
    for (int c = 0; c < C; c++)
        for (int i = 0; i < L; i++) {
            double a = bias[c];
            for (int k = 0; k < Kc; k++) {
                int j = i + k - (Kc - 1);
                double v = j >= 0 ? x[j * C + c] : st0[c * (Kc - 1) + (Kc - 1) + j];
                a += (double)w[c * Kc + k] * v;
            }
            ref[i * C + c] = a / (1 + exp(-a));
        }
    /* one call, slot 1 of 2 */
    float *st = calloc((size_t)2 * C * (Kc - 1), sizeof(float)), *out = malloc(sizeof(float) * L * C);
    memcpy(st + C * (Kc - 1), st0, sizeof(float) * C * (Kc - 1));
    int32_t cu[2] = {0, L}, slot[1] = {1};
    /* x as a column block of a wider matrix (row stride C + 7, garbage around it) */
    int ld = C + 7;
    float *xw = malloc(sizeof(float) * L * ld);
    for (int i = 0; i < L * ld; i++) xw[i] = 1e4f;
    for (int i = 0; i < L; i++) memcpy(xw + (size_t)i * ld + 3, x + (size_t)i * C, sizeof(float) * C);
    be->conv1d(be, out, xw + 3, ld, w, bias, st, cu, slot, 1, L, C, Kc);
    free(xw);
    EXPECT_CLOSE(out, ref, (size_t)L * C, 1e-5, 1e-5);
    float *fin = malloc(sizeof(float) * C * (Kc - 1));
    memcpy(fin, st + C * (Kc - 1), sizeof(float) * C * (Kc - 1));
    int ok = 1;
    for (int c = 0; c < C; c++) for (int m = 0; m < Kc - 1; m++) ok &= fin[c * (Kc - 1) + m] == x[(L - (Kc - 1) + m) * C + c];
    EXPECT(ok);
    /* the same sequence fed as 2 tokens, then 1, then 6, in one batch each with another
     * sequence beside it: same outputs, same final state */
    memcpy(st + C * (Kc - 1), st0, sizeof(float) * C * (Kc - 1));
    int parts[3] = {2, 1, 6}, off = 0;
    float *other = rvec((size_t)3 * C, 1), *xb = malloc(sizeof(float) * 9 * C), *ob = malloc(sizeof(float) * 9 * C);
    for (int p = 0; p < 3; p++) {
        int n = parts[p];
        memcpy(xb, other, sizeof(float) * 3 * C);               /* seq in slot 0: 3 tokens */
        memcpy(xb + 3 * C, x + off * C, sizeof(float) * n * C); /* our seq in slot 1 */
        int32_t cu2[3] = {0, 3, 3 + n}, sl2[2] = {0, 1};
        be->conv1d(be, ob, xb, C, w, bias, st, cu2, sl2, 2, 3 + n, C, Kc);
        memcpy(out + off * C, ob + 3 * C, sizeof(float) * n * C);
        off += n;
    }
    EXPECT_CLOSE(out, ref, (size_t)L * C, 1e-5, 1e-5);
    EXPECT(memcmp(fin, st + C * (Kc - 1), sizeof(float) * C * (Kc - 1)) == 0);
    free(x); free(w); free(bias); free(st0); free(ref); free(st); free(out); free(fin); free(other); free(xb); free(ob);
}

/* naive double recurrence for one sequence */
static void ssd_ref(double *y, double *S, const float *x, const float *dt, const float *A_log,
                    const float *B, const float *Cm, const float *D, const float *dtb, int L, int H,
                    int P, int G, int N, double dmin, double dmax) {
    for (int t = 0; t < L; t++)
        for (int h = 0; h < H; h++) {
            int g = h / (H / G);
            double v = (double)dt[t * H + h] + dtb[h];
            double d = v > 20 ? v : log1p(exp(v));
            if (d < dmin) d = dmin;
            if (d > dmax) d = dmax;
            double dA = exp(d * -exp((double)A_log[h]));
            for (int p = 0; p < P; p++) {
                double acc = 0, xv = x[(t * H + h) * P + p];
                for (int n = 0; n < N; n++) {
                    double *s = &S[(h * P + p) * N + n];
                    *s = *s * dA + d * xv * B[(t * G + g) * N + n];
                    acc += *s * Cm[(t * G + g) * N + n];
                }
                y[(t * H + h) * P + p] = acc + D[h] * xv;
            }
        }
}

TEST(ssd_scan_chunked_equals_recurrent) {
    int H = 4, P = 6, G = 2, N = 5, chunk = 8;
    int lens[3] = {19, 1, 8};
    float *A_log = rvec(H, 1), *D = rvec(H, 1), *dtb = rvec(H, 1);
    for (int n_case = 0; n_case < 2; n_case++) {
        float dmin = n_case ? 0.01f : 0.0f, dmax = n_case ? 0.5f : INFINITY;
        for (int s = 0; s < 3; s++) {
            int L = lens[s];
            float *x = rvec((size_t)L * H * P, 1), *dt = rvec((size_t)L * H, 2), *B = rvec((size_t)L * G * N, 1), *Cm = rvec((size_t)L * G * N, 1);
            float *S0 = rvec((size_t)H * P * N, 1);
            double *yr = malloc(sizeof(double) * L * H * P), *Sr = malloc(sizeof(double) * H * P * N);
            for (int i = 0; i < H * P * N; i++) Sr[i] = S0[i];
            ssd_ref(yr, Sr, x, dt, A_log, B, Cm, D, dtb, L, H, P, G, N, dmin, dmax);
            float *y1 = malloc(sizeof(float) * L * H * P), *y2 = malloc(sizeof(float) * L * H * P);
            float *S1 = malloc(sizeof(float) * H * P * N), *S2 = malloc(sizeof(float) * H * P * N);
            memcpy(S1, S0, sizeof(float) * H * P * N);
            memcpy(S2, S0, sizeof(float) * H * P * N);
            cpu_ssd_scan_recurrent(y1, x, dt, A_log, B, Cm, D, dtb, S1, L, H, P, G, N, dmin, dmax);
            cpu_ssd_scan_chunked(y2, x, dt, A_log, B, Cm, D, dtb, S2, L, H, P, G, N, chunk, dmin, dmax);
            EXPECT_CLOSE(y1, yr, (size_t)L * H * P, 1e-4, 1e-4);
            EXPECT_CLOSE(y2, yr, (size_t)L * H * P, 1e-4, 1e-4);
            EXPECT_CLOSE(S1, Sr, (size_t)H * P * N, 1e-4, 1e-4);
            EXPECT_CLOSE(S2, Sr, (size_t)H * P * N, 1e-4, 1e-4);
            free(x); free(dt); free(B); free(Cm); free(S0); free(yr); free(Sr); free(y1); free(y2); free(S1); free(S2);
        }
    }
    /* op level: three sequences of lengths 19, 1, 8 in one call, slots 2, 0, 1 */
    int T = 28, n_slots = 3;
    float *x = rvec((size_t)T * H * P, 1), *dt = rvec((size_t)T * H, 2), *B = rvec((size_t)T * G * N, 1), *Cm = rvec((size_t)T * G * N, 1);
    float *st = rvec((size_t)n_slots * H * P * N, 1), *y = malloc(sizeof(float) * T * H * P);
    double *yr = malloc(sizeof(double) * T * H * P), *Sr = malloc(sizeof(double) * n_slots * H * P * N);
    for (int i = 0; i < n_slots * H * P * N; i++) Sr[i] = st[i];
    int32_t cu[4] = {0, 19, 20, 28}, slots[3] = {2, 0, 1};
    for (int s = 0; s < 3; s++) {
        int t0 = cu[s], L = cu[s + 1] - t0;
        ssd_ref(yr + t0 * H * P, Sr + slots[s] * H * P * N, x + t0 * H * P, dt + t0 * H, A_log, B + t0 * G * N,
                Cm + t0 * G * N, D, dtb, L, H, P, G, N, 0.0, INFINITY);
    }
    /* x|B|C as column blocks of one [T, ld] matrix and dt inside a wider one, garbage between */
    int ld = H * P + 2 * G * N + 5, dld = H + 3;
    float *xbc = malloc(sizeof(float) * T * ld), *dtw = malloc(sizeof(float) * T * dld);
    for (int i = 0; i < T * ld; i++) xbc[i] = 1e4f;
    for (int i = 0; i < T * dld; i++) dtw[i] = 1e4f;
    for (int t = 0; t < T; t++) {
        memcpy(xbc + (size_t)t * ld, x + (size_t)t * H * P, sizeof(float) * H * P);
        memcpy(xbc + (size_t)t * ld + H * P + 1, B + (size_t)t * G * N, sizeof(float) * G * N);
        memcpy(xbc + (size_t)t * ld + H * P + 2 + G * N, Cm + (size_t)t * G * N, sizeof(float) * G * N);
        memcpy(dtw + (size_t)t * dld + 2, dt + (size_t)t * H, sizeof(float) * H);
    }
    be->ssd_scan(be, y, xbc, dtw + 2, A_log, xbc + H * P + 1, xbc + H * P + 2 + G * N, D, dtb, st, cu, slots, 3, T, ld,
                 dld, H, P, G, N, chunk, 0.0f, INFINITY);
    free(xbc); free(dtw);
    EXPECT_CLOSE(y, yr, (size_t)T * H * P, 1e-4, 1e-4);
    EXPECT_CLOSE(st, Sr, (size_t)n_slots * H * P * N, 1e-4, 1e-4);
    free(x); free(dt); free(B); free(Cm); free(st); free(y); free(yr); free(Sr);
    free(A_log); free(D); free(dtb);
    /* decode-sized: 8 single-token sequences, wide heads (the thread-pool path) == per sequence */
    H = 8; P = 32; N = 64; G = 2;
    int ns = 8;
    A_log = rvec(H, 1); D = rvec(H, 1); dtb = rvec(H, 1);
    x = rvec((size_t)ns * H * P, 1); dt = rvec((size_t)ns * H, 2); B = rvec((size_t)ns * G * N, 1); Cm = rvec((size_t)ns * G * N, 1);
    st = rvec((size_t)ns * H * P * N, 1);
    float *st2 = malloc(sizeof(float) * ns * H * P * N), *y2 = malloc(sizeof(float) * ns * H * P);
    memcpy(st2, st, sizeof(float) * ns * H * P * N);
    y = malloc(sizeof(float) * ns * H * P);
    int32_t cu8[9], sl8[8];
    for (int i = 0; i <= ns; i++) cu8[i] = i;
    for (int i = 0; i < ns; i++) sl8[i] = (i * 3) % ns;
    { /* the op reads x, B, C with one row stride: pack them as the model's conv output is */
        int pld = H * P + 2 * G * N;
        float *pk = malloc(sizeof(float) * ns * pld);
        for (int t = 0; t < ns; t++) {
            memcpy(pk + (size_t)t * pld, x + (size_t)t * H * P, sizeof(float) * H * P);
            memcpy(pk + (size_t)t * pld + H * P, B + (size_t)t * G * N, sizeof(float) * G * N);
            memcpy(pk + (size_t)t * pld + H * P + G * N, Cm + (size_t)t * G * N, sizeof(float) * G * N);
        }
        be->ssd_scan(be, y, pk, dt, A_log, pk + H * P, pk + H * P + G * N, D, dtb, st, cu8, sl8, ns, ns, pld, H, H, P,
                     G, N, chunk, 0.0f, INFINITY);
        free(pk);
    }
    for (int i = 0; i < ns; i++)
        cpu_ssd_scan_recurrent(y2 + (size_t)i * H * P, x + (size_t)i * H * P, dt + (size_t)i * H, A_log, B + (size_t)i * G * N,
                               Cm + (size_t)i * G * N, D, dtb, st2 + (size_t)sl8[i] * H * P * N, 1, H, P, G, N, 0.0f, INFINITY);
    EXPECT(memcmp(y, y2, sizeof(float) * ns * H * P) == 0);
    EXPECT(memcmp(st, st2, sizeof(float) * ns * H * P * N) == 0);
    free(x); free(dt); free(B); free(Cm); free(st); free(st2); free(y); free(y2); free(A_log); free(D); free(dtb);
}

TEST(gated_rmsnorm_groups) {
    int T = 3, Dm = 24, eps_i = 0;
    float eps = 1e-6f;
    (void)eps_i;
    float *y = rvec((size_t)T * Dm, 2), *z = rvec((size_t)T * Dm, 2), *w = rvec(Dm, 1), *o = malloc(sizeof(float) * T * Dm);
    double *ref = malloc(sizeof(double) * T * Dm);
    int groups[2] = {24, 8};
    for (int gi = 0; gi < 2; gi++) {
        int gs = groups[gi];
        /* z as a column block of a wider matrix (row stride Dm + 5, garbage beside it) */
        int zld = Dm + 5;
        float *zw = malloc(sizeof(float) * T * zld);
        for (int i = 0; i < T * zld; i++) zw[i] = 1e4f;
        for (int t = 0; t < T; t++) memcpy(zw + (size_t)t * zld + 5, z + (size_t)t * Dm, sizeof(float) * Dm);
        be->gated_rmsnorm(be, o, y, zw + 5, zld, w, T, Dm, gs, eps);
        free(zw);
        for (int t = 0; t < T; t++)
            for (int g0 = 0; g0 < Dm; g0 += gs) {
                double ss = 0, gv[24];
                for (int i = g0; i < g0 + gs; i++) {
                    double zz = z[t * Dm + i];
                    gv[i - g0] = y[t * Dm + i] * zz / (1 + exp(-zz));
                    ss += gv[i - g0] * gv[i - g0];
                }
                double r = 1 / sqrt(ss / gs + eps);
                for (int i = g0; i < g0 + gs; i++) ref[t * Dm + i] = w[i] * gv[i - g0] * r;
            }
        EXPECT_CLOSE(o, ref, (size_t)T * Dm, 1e-5, 1e-5);
    }
    free(y); free(z); free(w); free(o); free(ref);
}

static op_sample_params sp(float temp, float top_p, int top_k, float min_p, uint32_t step) {
    op_sample_params p = {temp, top_p, top_k, min_p, 1234, 5, 6, step};
    return p;
}

TEST(sample_greedy_and_ties) {
    float l[6] = {0.5f, 3.0f, -1.0f, 3.0f, 2.9f, 3.0f};
    int32_t id;
    op_sample_params p = sp(0.0f, 1.0f, 0, 0.0f, 0);
    be->sample(be, &id, l, 1, 6, &p);
    EXPECT_EQ_INT(id, 1);
    p = sp(1.0f, 1.0f, 1, 0.0f, 0); /* top_k = 1 is greedy too */
    be->sample(be, &id, l, 1, 6, &p);
    EXPECT_EQ_INT(id, 1);
    /* batch rows independent */
    float two[12];
    memcpy(two, l, sizeof l);
    float l2[6] = {0, 0, 0, 0, 9, 0};
    memcpy(two + 6, l2, sizeof l2);
    int32_t ids[2];
    op_sample_params pp[2] = {sp(0, 1, 0, 0, 0), sp(0, 1, 0, 0, 0)};
    be->sample(be, ids, two, 2, 6, pp);
    EXPECT(ids[0] == 1 && ids[1] == 4);
}

TEST(sample_frequencies_match_probabilities) {
    int V = 8, n = 40000;
    float l[8] = {1.0f, 0.2f, -0.5f, 2.0f, 0.0f, -3.0f, 1.5f, 0.7f};
    float temp = 0.8f;
    double pr[8], z = 0;
    for (int i = 0; i < V; i++) { pr[i] = exp(l[i] / temp); z += pr[i]; }
    for (int i = 0; i < V; i++) pr[i] /= z;
    int cnt[8] = {0};
    for (int s = 0; s < n; s++) {
        op_sample_params p = sp(temp, 1.0f, 0, 0.0f, (uint32_t)s);
        int32_t id;
        be->sample(be, &id, l, 1, V, &p);
        EXPECT(id >= 0 && id < V);
        cnt[id]++;
    }
    double chi = 0;
    for (int i = 0; i < V; i++) { double e = n * pr[i]; chi += (cnt[i] - e) * (cnt[i] - e) / e; }
    /* 7 degrees of freedom: P(chi2 > 24.3) ~ 0.001 */
    EXPECT_MSG(chi < 24.3, "chi2 = %.2f", chi);
    /* same key -> same token; the draw is a pure function of (seed, problem, sample, step) */
    op_sample_params p = sp(temp, 1.0f, 0, 0.0f, 77);
    int32_t a, b2;
    be->sample(be, &a, l, 1, V, &p);
    be->sample(be, &b2, l, 1, V, &p);
    EXPECT_EQ_INT(a, b2);
}

TEST(sample_filters_exclude) {
    int V = 8, n = 4000;
    /* probs at T=1 roughly: id3 .38 id6 .23 id0 .14 id7 .10 id1 .06 id4 .05 id2 .03 id5 .002 */
    float l[8] = {1.0f, 0.2f, -0.5f, 2.0f, 0.0f, -3.0f, 1.5f, 0.7f};
    double pr[8], z = 0;
    for (int i = 0; i < V; i++) { pr[i] = exp(l[i]); z += pr[i]; }
    for (int i = 0; i < V; i++) pr[i] /= z;
    int cnt[8];
    /* top-k 3: only {3, 6, 0}, in proportion */
    memset(cnt, 0, sizeof cnt);
    for (int s = 0; s < n; s++) { op_sample_params p = sp(1, 1, 3, 0, (uint32_t)s); int32_t id; be->sample(be, &id, l, 1, V, &p); cnt[id]++; }
    EXPECT(cnt[1] + cnt[2] + cnt[4] + cnt[5] + cnt[7] == 0);
    EXPECT(cnt[0] > 0 && cnt[3] > 0 && cnt[6] > 0);
    EXPECT_NEAR((double)cnt[3] / n, pr[3] / (pr[3] + pr[6] + pr[0]), 0.03);
    /* top-p: nucleus of mass 0.6 = {3 (.38), 6 (.23)} crossing at 6 */
    double m36 = pr[3] + pr[6];
    EXPECT(pr[3] < 0.6 && m36 >= 0.6);
    memset(cnt, 0, sizeof cnt);
    for (int s = 0; s < n; s++) { op_sample_params p = sp(1, 0.6f, 0, 0, (uint32_t)s); int32_t id; be->sample(be, &id, l, 1, V, &p); cnt[id]++; }
    EXPECT(cnt[3] + cnt[6] == n);
    EXPECT(cnt[3] > 0 && cnt[6] > 0);
    EXPECT_NEAR((double)cnt[3] / n, pr[3] / m36, 0.03);
    /* min-p 0.3: keep p >= 0.3 * p(3) -> {3, 6, 0} (0.14/0.38 = .37) but not 7 (.27) */
    memset(cnt, 0, sizeof cnt);
    for (int s = 0; s < n; s++) { op_sample_params p = sp(1, 1, 0, 0.3f, (uint32_t)s); int32_t id; be->sample(be, &id, l, 1, V, &p); cnt[id]++; }
    EXPECT(cnt[1] + cnt[2] + cnt[4] + cnt[5] + cnt[7] == 0);
    EXPECT(cnt[0] > 0 && cnt[3] > 0 && cnt[6] > 0);
    /* top-k 2 then top-p 0.5 on the renormalised pair: p(3 | {3,6}) = .62 >= .5 -> only 3 */
    memset(cnt, 0, sizeof cnt);
    for (int s = 0; s < 500; s++) { op_sample_params p = sp(1, 0.5f, 2, 0, (uint32_t)s); int32_t id; be->sample(be, &id, l, 1, V, &p); cnt[id]++; }
    EXPECT_EQ_INT(cnt[3], 500);
    /* min-p applies after top-p (transformers' order): p = .4/.35/.25, top_p .5 keeps {0, 1}
     * (the nucleus is computed before min-p removes id 2); min_p .7 (cut .28) keeps both */
    float l3[3] = {logf(0.4f), logf(0.35f), logf(0.25f)};
    memset(cnt, 0, sizeof cnt);
    for (int s = 0; s < 2000; s++) { op_sample_params p = sp(1, 0.5f, 0, 0.7f, (uint32_t)s); int32_t id; be->sample(be, &id, l3, 1, 3, &p); cnt[id]++; }
    EXPECT(cnt[2] == 0 && cnt[0] > 0 && cnt[1] > 0);
    EXPECT_NEAR((double)cnt[1] / 2000, 0.35 / 0.75, 0.04);
    /* large vocabulary: top-p with a long tail takes the prefilter path */
    int BV = 50000;
    float *big = malloc(sizeof(float) * BV);
    for (int i = 0; i < BV; i++) big[i] = frand(1);
    big[123] = 14.0f; /* e^14 + e^13.5 = 1.93M of 1.99M total: the 0.9 nucleus is these two */
    big[40000] = 13.5f;
    int c123 = 0, c4 = 0;
    for (int s = 0; s < 2000; s++) {
        op_sample_params p = sp(1, 0.9f, 0, 0, (uint32_t)s);
        int32_t id;
        be->sample(be, &id, big, 1, BV, &p);
        c123 += id == 123;
        c4 += id == 40000;
    }
    EXPECT_EQ_INT(c123 + c4, 2000);
    EXPECT(c123 > c4 && c4 > 0);
    free(big);
}

int main(void) {
    char err[256];
    be = op_backend_new("cpu", err, sizeof err);
    if (!be) { printf("cpu backend: %s\n", err); return 1; }
    RUN(philox_known_answers);
    RUN(matmul_vs_naive);
    RUN(small_matmul_is_batch_invariant);
    RUN(norms_swiglu_embed_add);
    RUN(qkv_rope_write_partial_rotate_half);
    RUN(paged_attention_vs_dense);
    RUN(conv1d_state_and_split);
    RUN(ssd_scan_chunked_equals_recurrent);
    RUN(gated_rmsnorm_groups);
    RUN(sample_greedy_and_ties);
    RUN(sample_frequencies_match_probabilities);
    RUN(sample_filters_exclude);
    be->destroy(&be);
    /* again on a pool with more threads than this machine may have cores (per-thread scratch,
     * task splits): the thread-sensitive ops must give the same answers */
    setenv("THINKFAST_CPU_THREADS", "7", 1);
    be = op_backend_new("cpu", err, sizeof err);
    unsetenv("THINKFAST_CPU_THREADS");
    RUN(matmul_vs_naive);
    RUN(small_matmul_is_batch_invariant);
    RUN(paged_attention_vs_dense);
    RUN(ssd_scan_chunked_equals_recurrent);
    RUN(sample_frequencies_match_probabilities);
    RUN(sample_filters_exclude);
    be->destroy(&be);
    return unit_summary();
}
