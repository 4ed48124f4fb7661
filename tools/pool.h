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
/* The number of threads to use when the user gives none: the CPUs this process may use, the
 * least of the CPUs online, its CPU affinity (taskset, Slurm and container cpusets), its cgroup's
 * CPU quota (cgroup v2 cpu.max or v1 cpu.cfs_quota_us, rounded up; Docker --cpus, Kubernetes
 * limits) and, inside a Slurm job, SLURM_CPUS_PER_TASK. At least 1. */
size_t lens_pool_default_threads(void);
/* The CPU quota of the cgroups listed in proc_cgroup (a /proc/self/cgroup file) under sys_root
 * (/sys/fs/cgroup), the smallest over the process's cgroup and its ancestors; 0 for none. */
size_t lens_pool_cgroup_cpus(const char *proc_cgroup, const char *sys_root);
#endif
