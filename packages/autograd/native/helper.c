/*
 * One helper thread for splitting a mid-size product in two: the caller posts one part, computes the other
 * itself, and then waits for the helper, or, when the helper has not started the posted part by then,
 * takes it back and computes it too (each part is claimed once, by whichever side gets to it first).
 * NOTE: on a virtual machine even a spinning helper sometimes starts a part a millisecond late (the host
 * deschedules its CPU); taking the part back bounds that cost to one part instead of a wait.
 * After a part the helper spins for as long as the poster asked (a training step's next small product
 * usually comes within a millisecond) and then sleeps on a condition variable, so an idle process costs no
 * CPU. Only one split runs at a time: a second Node thread (worker_threads) that finds the helper busy
 * computes its product unsplit.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "native.h"

#if defined(__x86_64__) || defined(__i386__)
#define CPU_RELAX() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define CPU_RELAX() __asm__ __volatile__("yield")
#else
#define CPU_RELAX() ((void)0)
#endif

static pthread_mutex_t owner = PTHREAD_MUTEX_INITIALIZER; /* held by the thread whose split is running */
static pthread_mutex_t sleep_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sleep_cv = PTHREAD_COND_INITIALIZER;
static int state; /* 0 not started, 1 running, -1 could not start; guarded by owner */
static double spin_override = -1; /* TAPEGRAD_HELPER_SPIN_US, read when the helper starts; -1: none */
static _Atomic double spin_us; /* how long to spin after the latest part, set by its poster */

static helper_part_fn job_fn;
static const void *job_arg;
static atomic_uint posted; /* parts posted so far */
static atomic_uint claimed; /* the last part claimed, by the helper or by the caller taking it back */
static atomic_uint finished; /* the last part the helper has finished */
static atomic_int asleep;

/* Counters for helper_stats (cheap: a few atomic adds and two clock reads per split). */
static _Atomic double post_time_us; /* when the latest part was posted */
static atomic_llong n_posts, n_taken_back, late_ns, split_ns, wait_ns;
static atomic_llong late_hist[HELPER_LATE_BUCKETS];
static const double late_bounds_us[HELPER_LATE_BUCKETS - 1] = { 5, 20, 50, 100, 300 };

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static void *helper_main(void *unused) {
  (void)unused;
  unsigned seen = 0;
  for (;;) {
    double start = now_us(), budget = atomic_load(&spin_us);
    unsigned spins = 0, next;
    while ((next = atomic_load(&posted)) == seen) {
      CPU_RELAX();
      if ((++spins & 63) != 0) continue;
      if (now_us() - start < budget) {
        /* NOTE: give the core away now and then: on a 2-core machine the engine's own background
         * threads (garbage collector, compiler) need it too */
        if ((spins & 4095) == 0) sched_yield();
        continue;
      }
      pthread_mutex_lock(&sleep_mu);
      atomic_store(&asleep, 1);
      /* NOTE: posted is read after asleep is set, and the poster reads asleep after it bumps posted (both
       * sequentially consistent), so a part posted in between is seen here or wakes the wait below. */
      while (atomic_load(&posted) == seen) pthread_cond_wait(&sleep_cv, &sleep_mu);
      atomic_store(&asleep, 0);
      pthread_mutex_unlock(&sleep_mu);
      start = now_us();
    }
    seen = next;
    /* NOTE: the caller only posts the next part once this one is claimed, so the claim is always next - 1
     * -> next; a failed claim means the caller took the part back (and may have posted another since) */
    unsigned expected = next - 1;
    if (!atomic_compare_exchange_strong(&claimed, &expected, next)) continue;
    double late = now_us() - atomic_load(&post_time_us);
    atomic_fetch_add(&late_ns, (long long)(late * 1000));
    int bucket = 0;
    while (bucket < HELPER_LATE_BUCKETS - 1 && late >= late_bounds_us[bucket]) bucket++;
    atomic_fetch_add(&late_hist[bucket], 1);
    job_fn(job_arg);
    atomic_store(&finished, next);
  }
  return NULL;
}

static int start_helper(void) {
  const char *env = getenv("TAPEGRAD_HELPER_SPIN_US");
  if (env && *env) {
    char *end;
    double v = strtod(env, &end);
    if (*end == '\0' && v >= 0) spin_override = v;
  }
  pthread_attr_t attr;
  pthread_t thread;
  if (pthread_attr_init(&attr) != 0) return -1;
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  int ok = pthread_create(&thread, &attr, helper_main, NULL) == 0;
  pthread_attr_destroy(&attr);
  return ok ? 1 : -1;
}

int helper_split(helper_part_fn fn, const void *theirs, const void *mine, double spin_after_us) {
  if (pthread_mutex_trylock(&owner) != 0) return 0;
  if (state == 0) state = start_helper();
  if (state < 0) {
    pthread_mutex_unlock(&owner);
    return 0;
  }
  double start = now_us();
  atomic_store(&post_time_us, start);
  atomic_fetch_add(&n_posts, 1);
  job_fn = fn;
  job_arg = theirs;
  atomic_store(&spin_us, spin_override >= 0 ? spin_override : spin_after_us);
  unsigned ticket = atomic_load(&posted) + 1;
  atomic_store(&posted, ticket);
  if (atomic_load(&asleep)) {
    pthread_mutex_lock(&sleep_mu);
    pthread_cond_signal(&sleep_cv);
    pthread_mutex_unlock(&sleep_mu);
  }
  fn(mine);
  unsigned expected = ticket - 1;
  if (atomic_compare_exchange_strong(&claimed, &expected, ticket)) {
    atomic_fetch_add(&n_taken_back, 1);
    fn(theirs); /* the helper has not started it: compute it here rather than wait */
  } else {
    double waiting = now_us();
    for (unsigned spins = 1; atomic_load(&finished) != ticket; spins++) {
      CPU_RELAX();
      if ((spins & 4095) == 0) sched_yield();
    }
    atomic_fetch_add(&wait_ns, (long long)((now_us() - waiting) * 1000));
  }
  atomic_fetch_add(&split_ns, (long long)((now_us() - start) * 1000));
  pthread_mutex_unlock(&owner);
  return 1;
}

void helper_stats(helper_stats_t *out, int reset) {
  atomic_llong *counters[] = { &n_posts, &n_taken_back, &late_ns, &split_ns, &wait_ns };
  long long values[5];
  for (int i = 0; i < 5; i++) values[i] = reset ? atomic_exchange(counters[i], 0) : atomic_load(counters[i]);
  out->posts = values[0];
  out->taken_back = values[1];
  out->late_ns = values[2];
  out->split_ns = values[3];
  out->wait_ns = values[4];
  for (int i = 0; i < HELPER_LATE_BUCKETS; i++) {
    out->late_hist[i] = reset ? atomic_exchange(&late_hist[i], 0) : atomic_load(&late_hist[i]);
  }
}

/* The units of a helper_units job: the caller claims them from the front, the helper from the back. */
typedef struct {
  helper_unit_fn fn;
  const void *ctx;
  _Atomic uint64_t ends; /* front << 32 | back: units [front, back) are unclaimed */
} unit_job_t;

typedef struct {
  unit_job_t *job;
  int from_back;
} unit_side_t;

static void unit_worker(const void *arg) {
  const unit_side_t *side = arg;
  unit_job_t *job = side->job;
  uint64_t cur = atomic_load(&job->ends);
  for (;;) {
    uint32_t front = (uint32_t)(cur >> 32), back = (uint32_t)cur;
    if (front >= back) return;
    uint64_t next = side->from_back ? ((uint64_t)front << 32) | (back - 1) : ((uint64_t)(front + 1) << 32) | back;
    if (!atomic_compare_exchange_weak(&job->ends, &cur, next)) continue;
    job->fn(job->ctx, (int)(side->from_back ? back - 1 : front), side->from_back);
    cur = atomic_load(&job->ends);
  }
}

void helper_units(helper_unit_fn fn, const void *ctx, int count, int split) {
  unit_job_t job = { fn, ctx, (uint64_t)(uint32_t)count };
  unit_side_t front = { &job, 0 }, back = { &job, 1 };
  if (split && count >= 2 && helper_split(unit_worker, &back, &front, 0.0)) return;
  for (int u = 0; u < count; u++) fn(ctx, u, 0);
}
