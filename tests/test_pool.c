/* The thread pool of the tools (tools/pool.c): jobs run each item once, on worker slots of
 * their own (tests/test_tsan.sh runs this under ThreadSanitizer too); and how many threads the
 * tools start when the user gives none: the CPU quota of the process's cgroups, read from made-up
 * /proc/self/cgroup files and cgroup trees of both versions, and the limits of affinity and Slurm
 * on this machine. */
#define _POSIX_C_SOURCE 200809L
#include "../tools/pool.c"
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#include "check.h"
#include <sys/stat.h>

#define R "build/pool_t"

static void put(const char *path, const char *text) {
  char dir[512], *slash;
  FILE *f;
  snprintf(dir, sizeof dir, "%s", path);
  for (slash = strchr(dir + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
    *slash = 0;
    mkdir(dir, 0755);
    *slash = '/';
  }
  f = fopen(path, "w");
  if (f) { fputs(text, f); fclose(f); }
}

static void test_cgroup_v2(void) {
  put(R "/v2/proc", "0::/job/step\n");
  CHECK(lens_pool_cgroup_cpus(R "/v2/proc", R "/v2/sys") == 0, "no cpu.max files: no limit");
  put(R "/v2/sys/job/step/cpu.max", "max 100000\n");
  CHECK(lens_pool_cgroup_cpus(R "/v2/proc", R "/v2/sys") == 0, "cpu.max 'max': no limit");
  put(R "/v2/sys/job/step/cpu.max", "150000 100000\n");
  CHECK(lens_pool_cgroup_cpus(R "/v2/proc", R "/v2/sys") == 2, "1.5 CPUs of quota: 2 threads (got %lu)",
        (unsigned long)lens_pool_cgroup_cpus(R "/v2/proc", R "/v2/sys"));
  put(R "/v2/sys/job/cpu.max", "100000 100000\n");
  CHECK(lens_pool_cgroup_cpus(R "/v2/proc", R "/v2/sys") == 1, "a parent's tighter quota wins");
  put(R "/v2/sys/job/cpu.max", "400000 100000\n");
  CHECK(lens_pool_cgroup_cpus(R "/v2/proc", R "/v2/sys") == 2, "a parent's looser quota does not");
}

static void test_cgroup_v1(void) {
  put(R "/v1/proc", "12:memory:/a\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/\n");
  CHECK(lens_pool_cgroup_cpus(R "/v1/proc", R "/v1/sys") == 0, "no quota files: no limit");
  put(R "/v1/sys/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "-1\n");
  put(R "/v1/sys/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
  CHECK(lens_pool_cgroup_cpus(R "/v1/proc", R "/v1/sys") == 0, "quota -1: no limit");
  put(R "/v1/sys/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "300000\n");
  CHECK(lens_pool_cgroup_cpus(R "/v1/proc", R "/v1/sys") == 3, "a docker --cpus 3 quota: 3 threads");
  put(R "/v1/proc2", "3:cpu:/slurm/uid_0/job_7\n");
  put(R "/v1/sys/cpu/slurm/uid_0/job_7/cpu.cfs_quota_us", "50000\n");
  put(R "/v1/sys/cpu/slurm/uid_0/job_7/cpu.cfs_period_us", "100000\n");
  CHECK(lens_pool_cgroup_cpus(R "/v1/proc2", R "/v1/sys") == 1, "half a CPU of quota: 1 thread");
  CHECK(lens_pool_cgroup_cpus(R "/missing", R "/v1/sys") == 0, "no /proc/self/cgroup: no limit");
}

static void test_default(void) {
  long online = sysconf(_SC_NPROCESSORS_ONLN);
  size_t n = lens_pool_default_threads();
  CHECK(n >= 1 && (online < 1 || n <= (size_t)online), "between 1 and the CPUs online (%lu of %ld)", (unsigned long)n, online);
  setenv("SLURM_CPUS_PER_TASK", "1", 1);
  CHECK(lens_pool_default_threads() == n, "SLURM_CPUS_PER_TASK alone (no SLURM_JOB_ID) changes nothing");
  setenv("SLURM_JOB_ID", "42", 1);
  CHECK(lens_pool_default_threads() == 1, "inside a Slurm job, SLURM_CPUS_PER_TASK=1 gives 1 thread");
  unsetenv("SLURM_JOB_ID");
  unsetenv("SLURM_CPUS_PER_TASK");
#if defined(__linux__) && defined(CPU_COUNT)
  {
    cpu_set_t all, one;
    CPU_ZERO(&one);
    if (sched_getaffinity(0, sizeof all, &all) == 0) {
      int c;
      for (c = 0; c < CPU_SETSIZE && !CPU_ISSET(c, &all); c++) {}
      CPU_SET(c, &one);
      CHECK(sched_setaffinity(0, sizeof one, &one) == 0 && lens_pool_default_threads() == 1, "pinned to one CPU (taskset): 1 thread");
      sched_setaffinity(0, sizeof all, &all);
    }
  }
#endif
}

/* The pool's jobs: each item runs once, on a worker slot below the pool's thread count; each
 * worker writes only its own slot of scratch (as lensnet's tasks do), summed after the job. */
#define ITEMS 257
typedef struct {
  int runs[ITEMS];
  size_t worker_of[ITEMS];
  double scratch[8][16];
} pool_job;

static void pool_task(void *ctx, size_t item, size_t worker) {
  pool_job *j = (pool_job *)ctx;
  size_t k;
  j->runs[item]++;
  j->worker_of[item] = worker;
  for (k = 0; k < 16; k++) j->scratch[worker < 8 ? worker : 7][k] += (double)item;
}

static void test_jobs(void) {
  static const size_t threads[4] = {1, 2, 4, 8};
  size_t t, round, i, w, k;
  for (t = 0; t < 4; t++) {
    lens_pool *pool = lens_pool_create(threads[t]);
    lensnet_parallel par = lens_pool_parallel(pool);
    int once = 1, slots = 1;
    double sum = 0;
    CHECK(pool != NULL && par.workers == threads[t], "a pool of %lu threads", (unsigned long)threads[t]);
    for (round = 0; round < 50; round++) { /* many jobs in a row: workers wake for each */
      pool_job j;
      size_t count = round % 7 == 0 ? 1 : ITEMS - round;
      memset(&j, 0, sizeof j);
      par.run(par.user, count, pool_task, &j);
      for (i = 0; i < ITEMS; i++) once &= j.runs[i] == (i < count);
      for (i = 0; i < count; i++) slots &= j.worker_of[i] < threads[t];
      if (round == 1)
        for (w = 0; w < 8; w++)
          for (k = 0; k < 16; k++) sum += j.scratch[w][k];
    }
    CHECK(once, "%lu threads: every item of every job runs exactly once", (unsigned long)threads[t]);
    CHECK(slots, "%lu threads: every worker slot is below the thread count", (unsigned long)threads[t]);
    CHECK(sum == 16.0 * (ITEMS - 1) * (ITEMS - 2) / 2, "%lu threads: the workers' scratch sums to the items' (%g)", (unsigned long)threads[t], sum);
    lens_pool_free(pool);
  }
  {
    /* no pool (lens_pool_create out of memory): the same jobs, serially */
    lensnet_parallel par = lens_pool_parallel(NULL);
    pool_job j;
    int once = 1;
    memset(&j, 0, sizeof j);
    par.run(par.user, ITEMS, pool_task, &j);
    for (i = 0; i < ITEMS; i++) once &= j.runs[i] == 1 && j.worker_of[i] == 0;
    CHECK(par.workers == 1 && once, "a NULL pool runs the job serially on worker 0");
  }
}

int main(void) {
  CHECK(system("rm -rf " R) == 0, "a clean " R);
  TEST("jobs: every item once, on a worker slot of its own, with 1 to 8 threads and without a pool") test_jobs();
  TEST("cgroup v2: cpu.max of the process's cgroup and its ancestors") test_cgroup_v2();
  TEST("cgroup v1: cpu.cfs_quota_us / cpu.cfs_period_us") test_cgroup_v1();
  TEST("the default thread count: affinity and Slurm") test_default();
  if (check__failed == 0) CHECK(system("rm -rf " R) == 0, "clean up");
  return check_summary();
}
