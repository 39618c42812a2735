/* workers/wrk_roles_internal.h — state shared by the role modules (not for other folders). */
#ifndef THINKFAST_WRK_ROLES_INTERNAL_H
#define THINKFAST_WRK_ROLES_INTERNAL_H

#include "workers/sample/backend.h"

struct wrk_roles {
    sample_backend_cache *backends;
};

#endif
