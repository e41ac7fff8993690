/*
 * threadpool.h: a fixed set of worker threads for data-parallel ops (matmul rows, attention heads).
 *
 * mlxr_threadpool_run(pool, fn, ctx) calls fn(ctx, i, n) once for every thread index i in [0, n)
 * (n = the pool's thread count, the caller being thread 0) and returns when all have finished. Each
 * op splits its own work by (i, n). Workers spin briefly on an atomic generation counter between
 * jobs (decode issues hundreds of small jobs a token), then sleep on a condition variable, so an idle
 * pool costs no CPU. One caller thread at a time may use a pool; the pool owns its threads.
 */
#ifndef MLXR_KERNELS_CPU_THREADPOOL_H
#define MLXR_KERNELS_CPU_THREADPOOL_H

typedef struct mlxr_threadpool mlxr_threadpool;
typedef void (*mlxr_thread_fn)(void *ctx, int ith, int nth);

/* n_threads >= 1 (1 means no workers: fn runs on the caller). NULL on failure. */
mlxr_threadpool *mlxr_threadpool_new(int n_threads);
void mlxr_threadpool_free(mlxr_threadpool *pool);
int mlxr_threadpool_n_threads(const mlxr_threadpool *pool);
void mlxr_threadpool_run(mlxr_threadpool *pool, mlxr_thread_fn fn, void *ctx);

#endif
