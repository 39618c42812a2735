/* common/log.h — one logging macro for every program.
 *
 * Lines look like "2026-11-23 13:40:01.123 I broker: listening on tcp://..." and go to stderr.
 * The level is checked before the arguments are evaluated, so LOG_DEBUG in a hot loop costs a
 * compare when debug logging is off. Set the level with log_set_level() or THINKFAST_LOG=debug.
 */
#ifndef THINKFAST_LOG_H
#define THINKFAST_LOG_H

typedef enum { LOG_LVL_DEBUG = 0, LOG_LVL_INFO = 1, LOG_LVL_WARN = 2, LOG_LVL_ERROR = 3, LOG_LVL_OFF = 4 } log_level;

extern int log_level_current; /* defined in log.c; read by the macros below */

void log_set_level(log_level lvl);
/* Parses "debug|info|warn|error|off"; returns -1 on an unknown name. */
int log_level_parse(const char *name);
/* Sets the program name printed on every line (not copied: pass a string literal). */
void log_set_name(const char *name);
void log_write(log_level lvl, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define LOG_AT(lvl, ...) \
    do { if ((int)(lvl) >= log_level_current) log_write((lvl), __FILE__, __LINE__, __VA_ARGS__); } while (0)
#define LOG_DEBUG(...) LOG_AT(LOG_LVL_DEBUG, __VA_ARGS__)
#define LOG_INFO(...)  LOG_AT(LOG_LVL_INFO, __VA_ARGS__)
#define LOG_WARN(...)  LOG_AT(LOG_LVL_WARN, __VA_ARGS__)
#define LOG_ERROR(...) LOG_AT(LOG_LVL_ERROR, __VA_ARGS__)

#endif
