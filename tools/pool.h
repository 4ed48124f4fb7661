/* pool.h - a small pthread pool that gives lensnet.h its parallel-for (the headers make no threads). */
#ifndef LENS_POOL_H
#define LENS_POOL_H
#include "lensnet.h"

typedef struct lens_pool lens_pool;

/* Starts threads-1 workers (the caller is the last one). threads <= 1 gives a serial pool. */
lens_pool *lens_pool_create(size_t threads);
void lens_pool_free(lens_pool *p);
/* A lensnet_parallel that runs tasks on this pool. */
lensnet_parallel lens_pool_parallel(lens_pool *p);
/* The number of threads to use when the user gives none: the CPUs online. */
size_t lens_pool_default_threads(void);
#endif
