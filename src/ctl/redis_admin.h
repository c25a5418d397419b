/* Placeholder while the Redis admin functions are written; not committed. */
#ifndef GREYHOLD_REDIS_ADMIN_H
#define GREYHOLD_REDIS_ADMIN_H
#endif
