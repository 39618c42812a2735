/* common/zkey.h — CURVE key files: parse, load, generate, write, and apply to ZeroMQ sockets.
 *
 * Used by the broker (its server keypair), the worker and jobctl (their client keypair and the
 * broker's public key), so it lives in common/; it depends only on libzmq (CURVE via
 * libsodium/tweetnacl: zmq_has("curve")). The allow-list and ZAP handler are broker/zap.h.
 *
 * File format: ZeroMQ's zcert text format (CZMQ reads and writes the same files), which is a
 * superset of "one key per line":
 *
 *     #   thinkfast CURVE secret key: keep private (mode 0600)
 *     metadata
 *     curve
 *         public-key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
 *         secret-key = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6"
 *
 *   - blank lines and lines starting with '#' are ignored;
 *   - a line without '=' at column 0 is a section name: "metadata" or "curve" (zcert);
 *     name = value lines inside "metadata" are ignored;
 *   - "public-key = KEY" / "secret-key = KEY", value optionally in double quotes, KEY = 40 Z85
 *     characters (32 bytes);
 *   - a line holding only a 40-character Z85 key is a public key (so a bare key works as a
 *     --curve-server-key file).
 * BASE.key holds both keys (mode 0600); BASE.pub only the public key. A secret file whose public
 * key does not match its secret key is refused. Errors name the file and the line:
 * "keys/w1.key:5: secret-key: expected 40 Z85 characters, got 39".
 */
#ifndef THINKFAST_ZKEY_H
#define THINKFAST_ZKEY_H

#include <stddef.h>
#include <stdint.h>

#define ZKEY_Z85_LEN 40   /* characters of a Z85-encoded 32-byte key */
#define ZKEY_BYTES 32

enum {
    ZKEY_OK = 0,
    ZKEY_ERR_IO = -1,        /* file could not be read / written */
    ZKEY_ERR_PARSE = -2,     /* malformed line, bad key */
    ZKEY_ERR_MISMATCH = -3,  /* public-key does not belong to secret-key */
    ZKEY_ERR_MISSING = -4,   /* a needed key is absent (no secret in a .pub file, ...) */
    ZKEY_ERR_NOCURVE = -5,   /* libzmq was built without CURVE */
    ZKEY_ERR_ARG = -6,       /* inconsistent options (only one of the two client files given) */
};

typedef struct zkey_pair {
    char public_z85[ZKEY_Z85_LEN + 1];
    char secret_z85[ZKEY_Z85_LEN + 1];   /* "" when has_secret == 0 */
    int has_secret;
} zkey_pair;

/* The client side of CURVE: our own keypair and the broker's public key. */
typedef struct zkey_client {
    zkey_pair mine;
    zkey_pair server;
} zkey_client;

#define ZKEY_ENV_SERVER_KEY "THINKFAST_CURVE_SERVER_KEY"
#define ZKEY_ENV_KEYFILE "THINKFAST_CURVE_KEYFILE"

const char *zkey_strerror(int rc);

/* 1 when zmq_has("curve"). */
int zkey_curve_available(void);

/* 1 when ch belongs to the Z85 alphabet. */
int zkey_is_z85_char(char ch);
/* 1 when s[0..n) is exactly 40 characters of the Z85 alphabet. */
int zkey_is_z85(const char *s, size_t n);
/* Decodes a valid 40-character Z85 key into 32 bytes. 0 ok, -1 when not a valid key. */
int zkey_decode(const char *z85, uint8_t out[ZKEY_BYTES]);

/* Parses key-file text (not NUL-terminated; len bytes). `path` only names the file in
 * messages. Fills *out (public key always; secret when present). Returns ZKEY_OK, or
 * ZKEY_ERR_PARSE / ZKEY_ERR_MISMATCH / ZKEY_ERR_MISSING with err = "PATH:LINE: what". */
int zkey_parse(const char *text, size_t len, const char *path, zkey_pair *out, char *err, size_t errlen);

/* Reads and parses PATH. need_secret: the file must hold a secret key (ZKEY_ERR_MISSING
 * otherwise, with a hint to pass the .key file). Logs a warning when a file holding a secret
 * key is readable by group or others. */
int zkey_load(const char *path, int need_secret, zkey_pair *out, char *err, size_t errlen);

/* A fresh keypair (zmq_curve_keypair). ZKEY_ERR_NOCURVE without CURVE support. */
int zkey_generate(zkey_pair *out, char *err, size_t errlen);

/* Writes BASE.key (both keys, mode 0600) and BASE.pub (public key, mode 0644). Refuses to
 * overwrite existing files unless force != 0. ZKEY_ERR_IO with err naming the file. */
int zkey_write(const char *base, const zkey_pair *kp, int force, char *err, size_t errlen);

/* Resolves the client-side CURVE configuration: the flag values when given, else the
 * environment (ZKEY_ENV_SERVER_KEY, ZKEY_ENV_KEYFILE). Returns 0 with *enabled = 0 when
 * neither is set (plaintext), 0 with *enabled = 1 and *out loaded when both are, ZKEY_ERR_ARG
 * when only one is, or a load error naming the file. */
int zkey_client_resolve(const char *server_key_flag, const char *keyfile_flag, zkey_client *out, int *enabled,
                        char *err, size_t errlen);

/* Makes `sock` (before bind) a CURVE server with our keypair; domain (may be NULL) is the ZAP
 * domain the ZAP handler sees. 0 ok, -1 with err (zmq's reason). */
int zkey_apply_server(void *sock, const zkey_pair *mine, const char *domain, char *err, size_t errlen);
/* Makes `sock` (before connect) a CURVE client of the server. 0 ok, -1 with err. */
int zkey_apply_client(void *sock, const zkey_client *c, char *err, size_t errlen);

#endif
