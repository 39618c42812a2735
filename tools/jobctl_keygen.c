/* tools/jobctl_keygen.c — `jobctl keygen BASE`: a fresh CURVE keypair written as BASE.key (secret,
 * mode 0600) and BASE.pub (public) in ZeroMQ's zcert format (common/zkey.h). One command makes
 * both the broker's keypair (--curve-secret BASE.key; clients get BASE.pub) and each client's
 * (--curve-keyfile BASE.key; its BASE.pub goes into the broker's --allow-keys file). */
#include <stdio.h>
#include <string.h>

#include "common/zkey.h"
#include "tools/jobctl.h"

int jobctl_cmd_keygen(const jobctl_opts *o, int argc, char **argv) {
    (void)o;
    static const char usage[] =
        "usage: jobctl keygen BASE [--force]\n"
        "Writes a fresh CURVE keypair: BASE.key (public + secret key, mode 0600) and BASE.pub (public\n"
        "key only), ZeroMQ zcert format; prints the public key on stdout.\n"
        "  broker:  broker --curve-secret BASE.key --allow-keys FILE; give BASE.pub to clients\n"
        "  client:  worker/jobctl --curve-keyfile BASE.key --curve-server-key BROKER.pub; append the\n"
        "           public key (or BASE.pub) to the broker's --allow-keys FILE\n"
        "  --force  overwrite existing files (default: refuse)\n";
    const char *base = NULL;
    int force = 0;
    const jobctl_flag flags[] = {{"--force", &force, NULL}, {NULL, NULL, NULL}};
    int prc = jobctl_parse_args(argc, argv, usage, flags, 1, "BASE", &base);
    if (prc) return prc == 1 ? 0 : prc;
    if (!*base) { fprintf(stderr, "jobctl keygen: missing BASE\n%s", usage); return 2; }
    char err[1024];
    zkey_pair kp;
    if (zkey_generate(&kp, err, sizeof err) != ZKEY_OK) { fprintf(stderr, "jobctl keygen: %s\n", err); return 1; }
    int rc = zkey_write(base, &kp, force, err, sizeof err);
    if (rc != ZKEY_OK) { memset(&kp, 0, sizeof kp); fprintf(stderr, "jobctl keygen: %s\n", err); return 1; }
    printf("%s\n", kp.public_z85);
    fprintf(stderr, "jobctl keygen: wrote %s.key (secret, mode 0600) and %s.pub\n", base, base);
    memset(&kp, 0, sizeof kp);
    return 0;
}
