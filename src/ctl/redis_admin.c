/* Placeholder while the Redis admin functions are written; not committed. */
#include "redis_admin.h"
