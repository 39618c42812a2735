/* tools/jobctl_png.c — SVG -> PNG for `jobctl compare --plot FILE.png`, with whatever this
 * machine offers and no build-time dependency:
 *   1. rsvg-convert (Debian package librsvg2-bin) found on PATH, run as a child process;
 *   2. else librsvg's shared library (librsvg-2.so.2, often present as a dependency of other
 *      packages even without librsvg2-bin) and cairo, loaded with dlopen at run time.
 * When neither exists the caller keeps the SVG and says so. The PNG is rendered at `scale`
 * times the SVG's pixel size (2 = sharp on paper and on high-DPI screens) on a white page.
 */
#include "tools/jobctl_report.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"

/* Full path of an executable named `name` on $PATH into buf; 0 found, -1 not. */
static int find_on_path(const char *name, char *buf, size_t cap) {
    const char *path = getenv("PATH");
    if (!path || !*path) path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        const char *colon = strchr(path, ':');
        size_t n = colon ? (size_t)(colon - path) : strlen(path);
        if (n > 0 && (size_t)snprintf(buf, cap, "%.*s/%s", (int)n, path, name) < cap && access(buf, X_OK) == 0) return 0;
        path += n;
        if (*path == ':') path++;
    }
    return -1;
}

static int via_rsvg_convert(const char *exe, const char *svg, const char *png, double scale, char *err, size_t errlen) {
    char zoom[32];
    snprintf(zoom, sizeof zoom, "%g", scale);
    pid_t pid = fork();
    if (pid < 0) return util_err(err, errlen, "fork: %s", strerror(errno));
    if (pid == 0) {
        execl(exe, exe, "--zoom", zoom, "--background-color", "white", "--format", "png", "--output", png, svg, (char *)NULL);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR) return util_err(err, errlen, "waitpid: %s", strerror(errno));
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return util_err(err, errlen, "%s failed (status %d) converting %s", exe, WIFEXITED(st) ? WEXITSTATUS(st) : -1, svg);
    return 0;
}

/* The few librsvg / cairo / gobject entry points we need, declared here (no -dev headers). */
typedef struct { int width, height; double em, ex; } rsvg_dim;
typedef void *(*fn_rsvg_new)(const char *file, void **gerror);
typedef void (*fn_rsvg_dims)(void *handle, rsvg_dim *d);
typedef int (*fn_rsvg_render)(void *handle, void *cr);
typedef void *(*fn_surf_new)(int format, int w, int h);
typedef void *(*fn_cr_new)(void *surface);
typedef void (*fn_cr_scale)(void *cr, double sx, double sy);
typedef void (*fn_cr_rgb)(void *cr, double r, double g, double b);
typedef void (*fn_cr_paint)(void *cr);
typedef int (*fn_write_png)(void *surface, const char *file);
typedef void (*fn_destroy)(void *p);

static int via_librsvg(const char *svg, const char *png, double scale, char *err, size_t errlen) {
    void *rs = dlopen("librsvg-2.so.2", RTLD_NOW | RTLD_LOCAL);
    void *ca = dlopen("libcairo.so.2", RTLD_NOW | RTLD_LOCAL);
    void *go = dlopen("libgobject-2.0.so.0", RTLD_NOW | RTLD_LOCAL);
    int rc = -1;
    if (!rs || !ca || !go) { util_err(err, errlen, "librsvg/cairo not loadable"); goto out; }
    fn_rsvg_new rnew = (fn_rsvg_new)dlsym(rs, "rsvg_handle_new_from_file");
    fn_rsvg_dims rdims = (fn_rsvg_dims)dlsym(rs, "rsvg_handle_get_dimensions");
    fn_rsvg_render rrender = (fn_rsvg_render)dlsym(rs, "rsvg_handle_render_cairo");
    fn_surf_new snew = (fn_surf_new)dlsym(ca, "cairo_image_surface_create");
    fn_cr_new crnew = (fn_cr_new)dlsym(ca, "cairo_create");
    fn_cr_scale crscale = (fn_cr_scale)dlsym(ca, "cairo_scale");
    fn_cr_rgb crrgb = (fn_cr_rgb)dlsym(ca, "cairo_set_source_rgb");
    fn_cr_paint crpaint = (fn_cr_paint)dlsym(ca, "cairo_paint");
    fn_write_png wpng = (fn_write_png)dlsym(ca, "cairo_surface_write_to_png");
    fn_destroy crfree = (fn_destroy)dlsym(ca, "cairo_destroy");
    fn_destroy sfree = (fn_destroy)dlsym(ca, "cairo_surface_destroy");
    fn_destroy unref = (fn_destroy)dlsym(go, "g_object_unref");
    if (!rnew || !rdims || !rrender || !snew || !crnew || !crscale || !crrgb || !crpaint || !wpng || !crfree || !sfree || !unref) {
        util_err(err, errlen, "librsvg/cairo: missing symbols");
        goto out;
    }
    void *gerr = NULL;
    void *h = rnew(svg, &gerr);
    if (!h) { util_err(err, errlen, "librsvg could not read %s", svg); goto out; }
    rsvg_dim d = {0, 0, 0, 0};
    rdims(h, &d);
    if (d.width <= 0 || d.height <= 0 || d.width > 20000 || d.height > 20000) {
        util_err(err, errlen, "librsvg: %s: bad size %dx%d", svg, d.width, d.height);
        unref(h);
        goto out;
    }
    void *surf = snew(0 /* CAIRO_FORMAT_ARGB32 */, (int)(d.width * scale + 0.5), (int)(d.height * scale + 0.5));
    void *cr = crnew(surf);
    crrgb(cr, 1, 1, 1);
    crpaint(cr);
    crscale(cr, scale, scale);
    int ok = rrender(h, cr);
    int wrc = ok ? wpng(surf, png) : -1;
    crfree(cr);
    sfree(surf);
    unref(h);
    if (!ok) util_err(err, errlen, "librsvg could not render %s", svg);
    else if (wrc != 0) util_err(err, errlen, "cairo: writing %s failed (status %d)", png, wrc);
    else rc = 0;
out:
    /* librsvg/glib are not built to be unloaded (dlclose can leave dangling atexit handlers). */
    return rc;
}

int jobctl_svg_to_png(const char *svg, const char *png, double scale, char *how, size_t howcap, char *err, size_t errlen) {
    if (!(scale > 0) || scale > 8) scale = 2;
    char exe[4096];
    if (how && howcap) how[0] = 0;
    if (find_on_path("rsvg-convert", exe, sizeof exe) == 0) {
        if (via_rsvg_convert(exe, svg, png, scale, err, errlen) != 0) return -1;
        if (how) snprintf(how, howcap, "rsvg-convert");
        return 0;
    }
    char lerr[256];
    if (via_librsvg(svg, png, scale, lerr, sizeof lerr) == 0) {
        if (how) snprintf(how, howcap, "librsvg");
        return 0;
    }
    return util_err(err, errlen, "no SVG-to-PNG converter on this machine (rsvg-convert from the Debian package "
                                 "librsvg2-bin; %s)", lerr);
}
