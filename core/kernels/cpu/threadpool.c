/*
 * threadpool.c: see threadpool.h. A job is published by bumping `generation` (release); workers
 * that see a new generation run their slice and decrement `pending`; the caller runs slice 0 then
 * waits for pending == 0. Workers spin for a bounded number of polls before sleeping on `wake`.
 */
#include "core/kernels/cpu/threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#define MLXR_POOL_SPIN_POLLS 20000

typedef struct pool_worker {
  struct mlxr_threadpool *pool;
  int index; /* 1..n_threads-1 */
  pthread_t thread;
} pool_worker;

struct mlxr_threadpool {
  int n_threads;
  pool_worker *workers; /* [n_threads - 1] */
  atomic_uint generation; /* bumped once per job */
  atomic_int pending;     /* workers still running the current job */
  atomic_bool stop;
  mlxr_thread_fn fn;      /* current job, valid while pending > 0 */
  void *ctx;
  pthread_mutex_t lock;   /* guards sleeping on wake */
  pthread_cond_t wake;
  int n_sleeping;         /* under lock */
};

static void *pool_worker_main(void *arg) {
  pool_worker *w = arg;
  mlxr_threadpool *pool = w->pool;
  unsigned seen = 0; /* no job can be published before mlxr_threadpool_new returns */
  for (;;) {
    unsigned gen;
    int polls = 0;
    while ((gen = atomic_load_explicit(&pool->generation, memory_order_acquire)) == seen &&
           !atomic_load_explicit(&pool->stop, memory_order_acquire)) {
      if (++polls < MLXR_POOL_SPIN_POLLS) {
        if ((polls & 63) == 0) sched_yield();
        continue;
      }
      pthread_mutex_lock(&pool->lock);
      pool->n_sleeping++;
      while (atomic_load_explicit(&pool->generation, memory_order_acquire) == seen &&
             !atomic_load_explicit(&pool->stop, memory_order_acquire)) {
        pthread_cond_wait(&pool->wake, &pool->lock);
      }
      pool->n_sleeping--;
      pthread_mutex_unlock(&pool->lock);
      polls = 0;
    }
    if (atomic_load_explicit(&pool->stop, memory_order_acquire)) return NULL;
    seen = gen;
    pool->fn(pool->ctx, w->index, pool->n_threads);
    atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_acq_rel);
  }
}

mlxr_threadpool *mlxr_threadpool_new(int n_threads) {
  if (n_threads < 1) n_threads = 1;
  mlxr_threadpool *pool = calloc(1, sizeof(*pool));
  if (!pool) return NULL;
  pool->n_threads = n_threads;
  atomic_init(&pool->generation, 0);
  atomic_init(&pool->pending, 0);
  atomic_init(&pool->stop, false);
  pthread_mutex_init(&pool->lock, NULL);
  pthread_cond_init(&pool->wake, NULL);
  if (n_threads > 1) {
    pool->workers = calloc((size_t)n_threads - 1, sizeof(pool_worker));
    if (!pool->workers) {
      mlxr_threadpool_free(pool);
      return NULL;
    }
    for (int i = 1; i < n_threads; i++) {
      pool_worker *w = &pool->workers[i - 1];
      w->pool = pool;
      w->index = i;
      if (pthread_create(&w->thread, NULL, pool_worker_main, w) != 0) {
        pool->n_threads = i; /* only workers 1..i-1 exist */
        mlxr_threadpool_free(pool);
        return NULL;
      }
    }
  }
  return pool;
}

void mlxr_threadpool_free(mlxr_threadpool *pool) {
  if (!pool) return;
  atomic_store_explicit(&pool->stop, true, memory_order_release);
  pthread_mutex_lock(&pool->lock);
  pthread_cond_broadcast(&pool->wake);
  pthread_mutex_unlock(&pool->lock);
  for (int i = 1; i < pool->n_threads; i++) pthread_join(pool->workers[i - 1].thread, NULL);
  free(pool->workers);
  pthread_mutex_destroy(&pool->lock);
  pthread_cond_destroy(&pool->wake);
  free(pool);
}

int mlxr_threadpool_n_threads(const mlxr_threadpool *pool) { return pool->n_threads; }

void mlxr_threadpool_run(mlxr_threadpool *pool, mlxr_thread_fn fn, void *ctx) {
  if (pool->n_threads == 1) {
    fn(ctx, 0, 1);
    return;
  }
  pool->fn = fn;
  pool->ctx = ctx;
  atomic_store_explicit(&pool->pending, pool->n_threads - 1, memory_order_release);
  atomic_fetch_add_explicit(&pool->generation, 1, memory_order_acq_rel);
  pthread_mutex_lock(&pool->lock);
  if (pool->n_sleeping > 0) pthread_cond_broadcast(&pool->wake);
  pthread_mutex_unlock(&pool->lock);
  fn(ctx, 0, pool->n_threads);
  unsigned polls = 0;
  while (atomic_load_explicit(&pool->pending, memory_order_acquire) > 0) {
    if ((++polls & 255) == 0) sched_yield();
  }
}
