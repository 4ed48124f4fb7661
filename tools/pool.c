/* pool.c - a pthread pool for lensnet_parallel: items are handed out one at a time from a shared
 * counter, so any number of threads computes the same results (the library reduces in a fixed
 * order). */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#endif
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__linux__)
#include <sched.h>
#endif
#include "pool.h"

struct lens_pool {
  size_t threads;
  pthread_t *workers;
  pthread_mutex_t lock;
  pthread_cond_t work_ready, work_done;
  /* the current job */
  lensnet_task_fn task;
  void *ctx;
  size_t count, next, finished;
  unsigned long generation;
  int stopping;
};

typedef struct { lens_pool *pool; size_t id; } worker_arg;

/* Takes items until none are left; `worker` names this thread's scratch slot. */
static void drain(lens_pool *p, size_t worker) {
  for (;;) {
    size_t item;
    lensnet_task_fn task;
    void *ctx;
    pthread_mutex_lock(&p->lock);
    if (p->next >= p->count) { pthread_mutex_unlock(&p->lock); return; }
    item = p->next++;
    task = p->task;
    ctx = p->ctx;
    pthread_mutex_unlock(&p->lock);
    task(ctx, item, worker);
    pthread_mutex_lock(&p->lock);
    if (++p->finished == p->count) pthread_cond_broadcast(&p->work_done);
    pthread_mutex_unlock(&p->lock);
  }
}

static void *worker_main(void *arg) {
  worker_arg *wa = (worker_arg *)arg;
  lens_pool *p = wa->pool;
  size_t id = wa->id;
  unsigned long seen = 0;
  free(wa);
  for (;;) {
    pthread_mutex_lock(&p->lock);
    while (!p->stopping && p->generation == seen) pthread_cond_wait(&p->work_ready, &p->lock);
    if (p->stopping) { pthread_mutex_unlock(&p->lock); return NULL; }
    seen = p->generation;
    pthread_mutex_unlock(&p->lock);
    drain(p, id);
  }
}

static void pool_run(void *user, size_t count, lensnet_task_fn task, void *ctx) {
  lens_pool *p = (lens_pool *)user;
  size_t i;
  if (!p || p->threads <= 1 || count <= 1) { /* no pool (out of memory at its creation): serial */
    for (i = 0; i < count; i++) task(ctx, i, 0);
    return;
  }
  pthread_mutex_lock(&p->lock);
  p->task = task; p->ctx = ctx; p->count = count; p->next = 0; p->finished = 0;
  p->generation++;
  pthread_cond_broadcast(&p->work_ready);
  pthread_mutex_unlock(&p->lock);
  drain(p, 0); /* the calling thread is worker 0 */
  pthread_mutex_lock(&p->lock);
  while (p->finished < p->count) pthread_cond_wait(&p->work_done, &p->lock);
  p->count = 0;
  pthread_mutex_unlock(&p->lock);
}

lens_pool *lens_pool_create(size_t threads) {
  lens_pool *p = (lens_pool *)calloc(1, sizeof *p);
  size_t i;
  if (!p) return NULL;
  p->threads = threads < 1 ? 1 : threads;
  pthread_mutex_init(&p->lock, NULL);
  pthread_cond_init(&p->work_ready, NULL);
  pthread_cond_init(&p->work_done, NULL);
  if (p->threads > 1) {
    p->workers = (pthread_t *)calloc(p->threads, sizeof(pthread_t));
    if (!p->workers) p->threads = 1; /* no memory for workers: a serial pool, the same results */
    for (i = 1; i < p->threads; i++) {
      worker_arg *wa = (worker_arg *)malloc(sizeof *wa);
      if (!wa) { p->threads = i; break; }
      wa->pool = p;
      wa->id = i;
      if (pthread_create(&p->workers[i], NULL, worker_main, wa) != 0) { free(wa); p->threads = i; break; }
    }
  }
  return p;
}

void lens_pool_free(lens_pool *p) {
  size_t i;
  if (!p) return;
  pthread_mutex_lock(&p->lock);
  p->stopping = 1;
  pthread_cond_broadcast(&p->work_ready);
  pthread_mutex_unlock(&p->lock);
  for (i = 1; i < p->threads; i++) pthread_join(p->workers[i], NULL);
  free(p->workers);
  pthread_mutex_destroy(&p->lock);
  pthread_cond_destroy(&p->work_ready);
  pthread_cond_destroy(&p->work_done);
  free(p);
}

lensnet_parallel lens_pool_parallel(lens_pool *p) {
  lensnet_parallel par;
  par.run = pool_run;
  par.user = p;
  par.workers = p ? p->threads : 1;
  return par;
}

/* ---- how many CPUs this process may use ------------------------------------------------------ */

/* The first line of a small file, or "" */
static void read_line(const char *path, char *out, size_t cap) {
  FILE *f = fopen(path, "r");
  out[0] = 0;
  if (!f) return;
  if (!fgets(out, (int)cap, f)) out[0] = 0;
  fclose(f);
}

/* CPUs a CFS quota allows: ceil(quota / period); 0 for none. */
static size_t quota_cpus(double quota, double period) {
  if (!(quota > 0) || !(period > 0)) return 0;
  return (size_t)((quota + period - 1) / period);
}

/* The smaller of two limits where 0 means none. */
static size_t min_limit(size_t a, size_t b) { return !a ? b : !b ? a : a < b ? a : b; }

size_t lens_pool_cgroup_cpus(const char *proc_cgroup, const char *sys_root) {
  FILE *f = fopen(proc_cgroup, "r");
  char line[1024], path[2200], text[128];
  size_t limit = 0;
  if (!f) return 0;
  while (fgets(line, sizeof line, f)) {
    char *hier = strchr(line, ':'), *rel, *end;
    int v2, v1;
    if (!hier || !(rel = strchr(hier + 1, ':'))) continue;
    *hier++ = 0; /* line: the hierarchy id; hier: its controllers; rel: the cgroup's path */
    *rel++ = 0;
    if ((end = strchr(rel, '\n')) != NULL) *end = 0;
    v2 = !strcmp(line, "0") && !*hier;
    v1 = !v2 && (!strcmp(hier, "cpu") || !strncmp(hier, "cpu,", 4) || strstr(hier, ",cpu,") || (strlen(hier) > 4 && !strcmp(hier + strlen(hier) - 4, ",cpu")));
    if (!v2 && !v1) continue;
    /* the process's cgroup and each of its ancestors: any of them may hold the quota */
    for (;;) {
      if (v2) {
        double q, per;
        snprintf(path, sizeof path, "%s%s/cpu.max", sys_root, rel);
        read_line(path, text, sizeof text);
        if (sscanf(text, "%lf %lf", &q, &per) == 2) limit = min_limit(limit, quota_cpus(q, per));
      } else {
        char q[64], per[64];
        const char *dirs[2];
        int k;
        dirs[0] = hier; dirs[1] = "cpu";
        for (k = 0; k < 2; k++) {
          snprintf(path, sizeof path, "%s/%s%s/cpu.cfs_quota_us", sys_root, dirs[k], rel);
          read_line(path, q, sizeof q);
          snprintf(path, sizeof path, "%s/%s%s/cpu.cfs_period_us", sys_root, dirs[k], rel);
          read_line(path, per, sizeof per);
          if (q[0] && per[0]) { limit = min_limit(limit, quota_cpus(atof(q), atof(per))); break; }
        }
      }
      if (!rel[0] || !strcmp(rel, "/")) break;
      if ((end = strrchr(rel, '/')) == NULL) break;
      *end = 0; /* the parent; "" is the root */
    }
  }
  fclose(f);
  return limit;
}

size_t lens_pool_default_threads(void) {
  long online = sysconf(_SC_NPROCESSORS_ONLN);
  size_t n = online > 0 ? (size_t)online : 1, limit;
  const char *slurm = getenv("SLURM_CPUS_PER_TASK");
#if defined(__linux__) && defined(CPU_COUNT)
  {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0 && (size_t)CPU_COUNT(&set) < n) n = (size_t)CPU_COUNT(&set);
  }
#endif
  limit = lens_pool_cgroup_cpus("/proc/self/cgroup", "/sys/fs/cgroup");
  if (limit && limit < n) n = limit;
  if (slurm && getenv("SLURM_JOB_ID") && atoi(slurm) > 0 && (size_t)atoi(slurm) < n) n = (size_t)atoi(slurm);
  return n;
}
