/* common/log.c — implementation of the logging macro in log.h. */

#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

int log_level_current = LOG_LVL_INFO;
static const char *log_name = "thinkfast";
static int log_env_read;

void log_set_level(log_level lvl) { log_level_current = (int)lvl; log_env_read = 1; }
void log_set_name(const char *name) { log_name = name; }

int log_level_parse(const char *name) {
    static const char *names[] = {"debug", "info", "warn", "error", "off"};
    for (int i = 0; i < 5; i++)
        if (strcmp(name, names[i]) == 0) return i;
    return -1;
}

void log_write(log_level lvl, const char *file, int line, const char *fmt, ...) {
    if (!log_env_read) {
        log_env_read = 1;
        const char *e = getenv("THINKFAST_LOG");
        int l = e ? log_level_parse(e) : -1;
        if (l >= 0) { log_level_current = l; if ((int)lvl < l) return; }
    }
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    localtime_r(&tv.tv_sec, &tm);
    char ts[32];
    strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%S", &tm);
    static const char letters[] = "DIWE";
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (lvl >= LOG_LVL_WARN)
        fprintf(stderr, "%s.%03d %c %s: %s (%s:%d)\n", ts, (int)(tv.tv_usec / 1000), letters[lvl], log_name, msg, file, line);
    else
        fprintf(stderr, "%s.%03d %c %s: %s\n", ts, (int)(tv.tv_usec / 1000), letters[lvl], log_name, msg);
}
