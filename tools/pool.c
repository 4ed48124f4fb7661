/* pool.c - a pthread pool for lensnet_parallel: items are handed out one at a time from a shared
 * counter, so any number of threads computes the same results (the library reduces in a fixed
 * order). */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>
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
  if (p->threads <= 1 || count <= 1) {
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
    if (!p->workers) { free(p); return NULL; }
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

size_t lens_pool_default_threads(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (size_t)n : 1;
}
