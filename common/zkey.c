/* common/zkey.c — CURVE key files (format and contracts in common/zkey.h). */
#include "common/zkey.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "common/log.h"
#include "common/util.h"

static const char Z85_CHARS[] =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

const char *zkey_strerror(int rc) {
    switch (rc) {
    case ZKEY_OK: return "ok";
    case ZKEY_ERR_IO: return "i/o error";
    case ZKEY_ERR_PARSE: return "malformed key file";
    case ZKEY_ERR_MISMATCH: return "public key does not match secret key";
    case ZKEY_ERR_MISSING: return "key missing";
    case ZKEY_ERR_NOCURVE: return "libzmq has no CURVE support";
    case ZKEY_ERR_ARG: return "inconsistent CURVE options";
    default: return "unknown error";
    }
}

int zkey_curve_available(void) { return zmq_has("curve") ? 1 : 0; }

static int z85_index(char ch) {
    if (!ch) return -1;
    const char *p = strchr(Z85_CHARS, ch);
    return p ? (int)(p - Z85_CHARS) : -1;
}

int zkey_is_z85_char(char ch) { return z85_index(ch) >= 0; }

int zkey_is_z85(const char *s, size_t n) {
    if (!s || n != ZKEY_Z85_LEN) return 0;
    for (size_t i = 0; i < n; i++)
        if (z85_index(s[i]) < 0) return 0;
    return 1;
}

int zkey_decode(const char *z85, uint8_t out[ZKEY_BYTES]) {
    if (!z85 || !zkey_is_z85(z85, strnlen(z85, ZKEY_Z85_LEN + 1))) return -1;
    for (int g = 0; g < ZKEY_Z85_LEN / 5; g++) {
        uint64_t v = 0;
        for (int i = 0; i < 5; i++) v = v * 85 + (uint64_t)z85_index(z85[g * 5 + i]);
        if (v > 0xFFFFFFFFull) return -1;   /* 5 characters encode at most 2^32-1 */
        out[g * 4 + 0] = (uint8_t)(v >> 24);
        out[g * 4 + 1] = (uint8_t)(v >> 16);
        out[g * 4 + 2] = (uint8_t)(v >> 8);
        out[g * 4 + 3] = (uint8_t)v;
    }
    return 0;
}

/* Describes why s[0..n) is not a key, for "expected ..." messages. */
static void why_not_key(const char *s, size_t n, char *buf, size_t cap) {
    if (n != ZKEY_Z85_LEN) { snprintf(buf, cap, "expected 40 Z85 characters, got %zu", n); return; }
    for (size_t i = 0; i < n; i++)
        if (z85_index(s[i]) < 0) {
            unsigned char ch = (unsigned char)s[i];
            if (ch >= 0x20 && ch < 0x7f) snprintf(buf, cap, "character '%c' at position %zu is not Z85", ch, i + 1);
            else snprintf(buf, cap, "byte 0x%02x at position %zu is not Z85", ch, i + 1);
            return;
        }
    snprintf(buf, cap, "not a valid Z85 key (a 5-character group exceeds 32 bits)");
}

static int is_all_hashes(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) if (s[i] != '#') return 0;
    return 1;
}

static int valid_key(const char *s, size_t n) {
    uint8_t tmp[ZKEY_BYTES];
    char z[ZKEY_Z85_LEN + 1];
    if (!zkey_is_z85(s, n)) return 0;
    memcpy(z, s, n);
    z[n] = 0;
    return zkey_decode(z, tmp) == 0;
}

static void trim(const char **s, size_t *n) {
    while (*n && (**s == ' ' || **s == '\t')) { (*s)++; (*n)--; }
    while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t' || (*s)[*n - 1] == '\r')) (*n)--;
}

int zkey_parse(const char *text, size_t len, const char *path, zkey_pair *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    int have_pub = 0, have_sec = 0, section_metadata = 0, lineno = 0;
    char why[128];
    size_t pos = 0;
    while (pos < len) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t raw = nl ? (size_t)(nl - line) : len - pos;
        pos += raw + (nl ? 1 : 0);
        lineno++;
        if (memchr(line, 0, raw)) return util_err(err, errlen, "%s:%d: NUL byte in a text file", path, lineno), ZKEY_ERR_PARSE;
        int indented = raw > 0 && (line[0] == ' ' || line[0] == '\t');
        const char *s = line;
        size_t n = raw;
        trim(&s, &n);
        if (n == 0) continue;
        /* a bare key (may begin with '#': '#' is a Z85 character) */
        if (valid_key(s, n) && !is_all_hashes(s, n)) {
            if (have_pub) return util_err(err, errlen, "%s:%d: a second public key (one key pair per file)", path, lineno), ZKEY_ERR_PARSE;
            memcpy(out->public_z85, s, n);
            have_pub = 1;
            continue;
        }
        if (s[0] == '#') continue;
        const char *eq = memchr(s, '=', n);
        if (!eq) {
            if (indented || n > 64)
                return util_err(err, errlen, "%s:%d: expected \"public-key = KEY\", \"secret-key = KEY\", a section name "
                                "(metadata, curve), a comment or a 40-character Z85 key", path, lineno), ZKEY_ERR_PARSE;
            if (n == 8 && memcmp(s, "metadata", 8) == 0) { section_metadata = 1; continue; }
            if (n == 5 && memcmp(s, "curve", 5) == 0) { section_metadata = 0; continue; }
            if (n == ZKEY_Z85_LEN || (n > 30 && n < 50)) {
                why_not_key(s, n, why, sizeof why);
                return util_err(err, errlen, "%s:%d: key: %s", path, lineno, why), ZKEY_ERR_PARSE;
            }
            return util_err(err, errlen, "%s:%d: unknown section \"%.*s\" (expected metadata or curve)", path, lineno,
                            (int)n, s), ZKEY_ERR_PARSE;
        }
        const char *name = s, *val = eq + 1;
        size_t name_n = (size_t)(eq - s), val_n = n - name_n - 1;
        trim(&name, &name_n);
        trim(&val, &val_n);
        if (section_metadata) continue;   /* zcert metadata: free-form */
        if (val_n >= 2 && val[0] == '"' && val[val_n - 1] == '"') { val++; val_n -= 2; }
        int is_pub = name_n == 10 && memcmp(name, "public-key", 10) == 0;
        int is_sec = name_n == 10 && memcmp(name, "secret-key", 10) == 0;
        int bare = 1;   /* '=' is a Z85 character: a damaged bare key must be reported as a key */
        for (size_t i = 0; i < n; i++) if (z85_index(s[i]) < 0) bare = 0;
        if (!is_pub && !is_sec && bare) {
            why_not_key(s, n, why, sizeof why);
            return util_err(err, errlen, "%s:%d: key: %s", path, lineno, why), ZKEY_ERR_PARSE;
        }
        if (!is_pub && !is_sec)
            return util_err(err, errlen, "%s:%d: unknown field \"%.*s\" (expected public-key or secret-key)", path, lineno,
                            (int)(name_n > 40 ? 40 : name_n), name), ZKEY_ERR_PARSE;
        if (!valid_key(val, val_n)) {
            why_not_key(val, val_n, why, sizeof why);
            return util_err(err, errlen, "%s:%d: %s: %s", path, lineno, is_pub ? "public-key" : "secret-key", why),
                   ZKEY_ERR_PARSE;
        }
        if ((is_pub && have_pub) || (is_sec && have_sec))
            return util_err(err, errlen, "%s:%d: %s given twice", path, lineno, is_pub ? "public-key" : "secret-key"),
                   ZKEY_ERR_PARSE;
        memcpy(is_pub ? out->public_z85 : out->secret_z85, val, val_n);
        if (is_pub) have_pub = 1; else have_sec = 1;
    }
    if (!have_pub && !have_sec) return util_err(err, errlen, "%s: no key found (expected public-key = KEY)", path), ZKEY_ERR_MISSING;
    if (have_sec) {
        char derived[ZKEY_Z85_LEN + 1];
        if (zmq_curve_public(derived, out->secret_z85) != 0)
            return util_err(err, errlen, "%s: cannot derive the public key: %s", path, zmq_strerror(zmq_errno())),
                   zmq_errno() == ENOTSUP ? ZKEY_ERR_NOCURVE : ZKEY_ERR_PARSE;
        if (have_pub && strcmp(derived, out->public_z85) != 0)
            return util_err(err, errlen, "%s: public-key does not belong to secret-key (a corrupted or hand-edited key file?)",
                            path), ZKEY_ERR_MISMATCH;
        memcpy(out->public_z85, derived, sizeof derived);
        out->has_secret = 1;
    }
    return ZKEY_OK;
}

int zkey_load(const char *path, int need_secret, zkey_pair *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    size_t len;
    char *text = util_read_file(path, &len, err, errlen);
    if (!text) return ZKEY_ERR_IO;
    if (len > (1u << 20)) { free(text); return util_err(err, errlen, "%s: %zu bytes is too large for a key file", path, len), ZKEY_ERR_PARSE; }
    int rc = zkey_parse(text, len, path, out, err, errlen);
    memset(text, 0, len);   /* do not leave the secret key in freed memory */
    free(text);
    if (rc) return rc;
    if (need_secret && !out->has_secret)
        return util_err(err, errlen, "%s: holds no secret-key (is this a .pub file? pass the .key file written by "
                        "`jobctl keygen`)", path), ZKEY_ERR_MISSING;
    struct stat st;
    if (out->has_secret && stat(path, &st) == 0 && (st.st_mode & 077))
        LOG_WARN("%s: holds a secret key but is readable by group/others (mode %03o); chmod 600 it", path,
                 (unsigned)(st.st_mode & 0777));
    return ZKEY_OK;
}

int zkey_generate(zkey_pair *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (!zkey_curve_available())
        return util_err(err, errlen, "libzmq was built without CURVE (zmq_has(\"curve\") == 0)"), ZKEY_ERR_NOCURVE;
    if (zmq_curve_keypair(out->public_z85, out->secret_z85) != 0)
        return util_err(err, errlen, "zmq_curve_keypair: %s", zmq_strerror(zmq_errno())), ZKEY_ERR_NOCURVE;
    out->has_secret = 1;
    return ZKEY_OK;
}

static int write_new(const char *path, const char *text, int mode, int force, char *err, size_t errlen) {
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (force ? O_TRUNC : O_EXCL), mode);
    if (fd < 0)
        return util_err(err, errlen, "%s: %s%s", path, strerror(errno),
                        errno == EEXIST ? " (refusing to overwrite a key; pass --force)" : ""), ZKEY_ERR_IO;
    /* O_CREAT's mode is filtered by the umask and ignored for an existing file: set it exactly */
    if (fchmod(fd, (mode_t)mode) != 0) { close(fd); return util_err(err, errlen, "%s: chmod: %s", path, strerror(errno)), ZKEY_ERR_IO; }
    size_t n = strlen(text), off = 0;
    while (off < n) {
        ssize_t w = write(fd, text + off, n - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) { int e = errno; close(fd); return util_err(err, errlen, "%s: write: %s", path, strerror(e)), ZKEY_ERR_IO; }
        off += (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) return util_err(err, errlen, "%s: %s", path, strerror(errno)), ZKEY_ERR_IO;
    return ZKEY_OK;
}

int zkey_write(const char *base, const zkey_pair *kp, int force, char *err, size_t errlen) {
    if (!kp->has_secret) return util_err(err, errlen, "zkey_write: keypair has no secret key"), ZKEY_ERR_MISSING;
    size_t bl = strlen(base);
    char *kpath = xmalloc(bl + 5), *ppath = xmalloc(bl + 5);
    snprintf(kpath, bl + 5, "%s.key", base);
    snprintf(ppath, bl + 5, "%s.pub", base);
    char sec[512], pub[512];
    snprintf(sec, sizeof sec,
             "#   thinkfast CURVE secret key (ZeroMQ zcert format). Keep it private: mode 0600.\n"
             "#   Give %s.pub, never this file, to the broker's operator.\n"
             "metadata\n"
             "curve\n"
             "    public-key = \"%s\"\n"
             "    secret-key = \"%s\"\n",
             base, kp->public_z85, kp->secret_z85);
    snprintf(pub, sizeof pub,
             "#   thinkfast CURVE public key (ZeroMQ zcert format). A client's: add the key to the\n"
             "#   broker's --allow-keys file. The broker's: clients pass this file as --curve-server-key.\n"
             "metadata\n"
             "curve\n"
             "    public-key = \"%s\"\n",
             kp->public_z85);
    int rc = write_new(kpath, sec, 0600, force, err, errlen);
    if (rc == ZKEY_OK) rc = write_new(ppath, pub, 0644, force, err, errlen);
    memset(sec, 0, sizeof sec);
    free(kpath);
    free(ppath);
    return rc;
}

int zkey_client_resolve(const char *server_key_flag, const char *keyfile_flag, zkey_client *out, int *enabled,
                        char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    *enabled = 0;
    const char *sk = server_key_flag, *kf = keyfile_flag;
    const char *sk_src = "--curve-server-key", *kf_src = "--curve-keyfile";
    if (!sk) { sk = getenv(ZKEY_ENV_SERVER_KEY); sk_src = "$" ZKEY_ENV_SERVER_KEY; }
    if (!kf) { kf = getenv(ZKEY_ENV_KEYFILE); kf_src = "$" ZKEY_ENV_KEYFILE; }
    if (sk && !*sk) sk = NULL;
    if (kf && !*kf) kf = NULL;
    if (!sk && !kf) return 0;
    if (!sk || !kf)
        return util_err(err, errlen, "CURVE needs both the broker's public key (--curve-server-key or $%s) and our own "
                        "keypair (--curve-keyfile or $%s); only %s was given", ZKEY_ENV_SERVER_KEY, ZKEY_ENV_KEYFILE,
                        sk ? sk_src : kf_src), ZKEY_ERR_ARG;
    if (!zkey_curve_available())
        return util_err(err, errlen, "%s given but libzmq was built without CURVE", sk_src), ZKEY_ERR_NOCURVE;
    int rc;
    char e2[512];
    if ((rc = zkey_load(sk, 0, &out->server, e2, sizeof e2)) != 0)
        return util_err(err, errlen, "%s: %s", sk_src, e2), rc;
    if ((rc = zkey_load(kf, 1, &out->mine, e2, sizeof e2)) != 0)
        return util_err(err, errlen, "%s: %s", kf_src, e2), rc;
    *enabled = 1;
    return 0;
}

int zkey_apply_server(void *sock, const zkey_pair *mine, const char *domain, char *err, size_t errlen) {
    int one = 1;
    if (!mine->has_secret) return util_err(err, errlen, "CURVE server needs a secret key"), -1;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, mine->secret_z85, ZKEY_Z85_LEN) != 0 ||
        (domain && zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, domain, strlen(domain)) != 0))
        return util_err(err, errlen, "CURVE server options: %s", zmq_strerror(zmq_errno())), -1;
    return 0;
}

int zkey_apply_client(void *sock, const zkey_client *c, char *err, size_t errlen) {
    if (!c->mine.has_secret) return util_err(err, errlen, "CURVE client needs its own secret key"), -1;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, c->server.public_z85, ZKEY_Z85_LEN) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, c->mine.public_z85, ZKEY_Z85_LEN) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, c->mine.secret_z85, ZKEY_Z85_LEN) != 0)
        return util_err(err, errlen, "CURVE client options: %s", zmq_strerror(zmq_errno())), -1;
    return 0;
}
