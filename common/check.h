/* common/check.h — the abort-on-impossible-state macro family.
 *
 * Programs (not daemons handling untrusted input) use these around calls whose failure means a
 * bug or a broken environment: the message names file:line, the call and the library's own
 * error text, then the program aborts. One generic macro, specialised per library.
 * CUDA_CHECK / CUBLAS_CHECK live in kernels/cuda/cuda_check.h (C callers never see CUDA types).
 */
#ifndef THINKFAST_CHECK_H
#define THINKFAST_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK_GEN(ok_expr, call_text, err_text) \
    do { if (!(ok_expr)) { \
        fprintf(stderr, "fatal: %s:%d: %s failed: %s\n", __FILE__, __LINE__, call_text, err_text); \
        abort(); } } while (0)

/* Generic assertion on an impossible state, with a printf-style explanation. */
#define CHECK(cond, ...) \
    do { if (!(cond)) { \
        fprintf(stderr, "fatal: %s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
        fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); abort(); } } while (0)

/* LMDB: rc == MDB_SUCCESS (0). Include <lmdb.h> before using. */
#define MDB_CHECK(call) \
    do { int mdb_check_rc_ = (call); CHECK_GEN(mdb_check_rc_ == 0, #call, mdb_strerror(mdb_check_rc_)); } while (0)

/* ZeroMQ: rc != -1. Include <zmq.h> before using. */
#define ZMQ_CHECK(call) \
    do { int zmq_check_rc_ = (call); CHECK_GEN(zmq_check_rc_ != -1, #call, zmq_strerror(zmq_errno())); } while (0)

#endif
