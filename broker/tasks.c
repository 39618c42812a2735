/* broker/tasks.c — names of task kinds and states (broker/tasks.h). */
#include "broker/tasks.h"

#include <string.h>

static const char *const kind_names[BRK_N_KINDS] = {"?", "sample", "score", "aggregate"};
static const char *const state_names[] = {"ready", "leased", "done", "failed", "cancelled"};

const char *brk_kind_name(int kind) {
    return kind > 0 && kind < BRK_N_KINDS ? kind_names[kind] : "?";
}

const char *brk_task_state_name(int state) {
    return state >= 0 && state <= BRK_TASK_CANCELLED ? state_names[state] : "?";
}

int brk_kind_parse(const char *name) {
    if (!name) return -1;
    for (int k = 1; k < BRK_N_KINDS; k++)
        if (strcmp(name, kind_names[k]) == 0) return k;
    return -1;
}
