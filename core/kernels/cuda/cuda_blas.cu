/*
 * cuda_blas.cu: see cuda_blas.h. cuBLAS is opened with dlopen (its soname for CUDA 13, then the
 * toolkit's standard directories) and the five entry points we use are looked up by name: create,
 * destroy, set stream, set workspace, GemmEx. The product maps our row-major y = x W^T onto
 * cuBLAS's column-major GEMM as C = A^T B with A = W (n_in x n_out, column-major: W's rows are
 * its columns), B = x (n_in x n_rows) and C = y^T (n_out x n_rows, leading dimension ldy).
 */
#include "core/kernels/cuda/cuda_blas.h"

#include <cublas_v2.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/common/status.h"

typedef cublasStatus_t (*create_fn)(cublasHandle_t *);
typedef cublasStatus_t (*destroy_fn)(cublasHandle_t);
typedef cublasStatus_t (*set_stream_fn)(cublasHandle_t, cudaStream_t);
typedef cublasStatus_t (*set_workspace_fn)(cublasHandle_t, void *, size_t);
typedef cublasStatus_t (*gemm_ex_fn)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int,
                                     int, const void *, const void *, cudaDataType, int,
                                     const void *, cudaDataType, int, const void *, void *,
                                     cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t);

struct mlxr_cublas {
  void *lib;          /* dlopen handle */
  cublasHandle_t handle;
  destroy_fn destroy;
  gemm_ex_fn gemm_ex;
};

static void *open_library(char *why, size_t why_len) {
  static const char *const names[] = {
      "libcublas.so.13",
      "/usr/local/cuda/lib64/libcublas.so.13",
      "/usr/local/cuda/targets/x86_64-linux/lib/libcublas.so.13",
      "libcublas.so",
  };
  why[0] = '\0';
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    void *lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (lib) return lib;
    if (i == 0) snprintf(why, why_len, "%s", dlerror());
  }
  return NULL;
}

int mlxr_cublas_open(cudaStream_t stream, void *workspace, size_t workspace_bytes, mlxr_cublas **out,
                     char *err, size_t err_len) {
  *out = NULL;
  char why[256];
  void *lib = open_library(why, sizeof why);
  if (!lib) return mlxr_errf(err, err_len, MLXR_ERR_UNSUPPORTED, "cuBLAS could not be loaded (%s)", why);
  create_fn create = (create_fn)dlsym(lib, "cublasCreate_v2");
  destroy_fn destroy = (destroy_fn)dlsym(lib, "cublasDestroy_v2");
  set_stream_fn set_stream = (set_stream_fn)dlsym(lib, "cublasSetStream_v2");
  set_workspace_fn set_workspace = (set_workspace_fn)dlsym(lib, "cublasSetWorkspace_v2");
  gemm_ex_fn gemm_ex = (gemm_ex_fn)dlsym(lib, "cublasGemmEx");
  if (!create || !destroy || !set_stream || !set_workspace || !gemm_ex) {
    dlclose(lib);
    return mlxr_errf(err, err_len, MLXR_ERR_UNSUPPORTED, "the cuBLAS found lacks cublasGemmEx or its helpers");
  }
  mlxr_cublas *b = (mlxr_cublas *)calloc(1, sizeof(*b));
  if (!b) {
    dlclose(lib);
    return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
  }
  b->lib = lib;
  b->destroy = destroy;
  b->gemm_ex = gemm_ex;
  cublasStatus_t st = create(&b->handle);
  if (st == CUBLAS_STATUS_SUCCESS) st = set_stream(b->handle, stream);
  if (st == CUBLAS_STATUS_SUCCESS) st = set_workspace(b->handle, workspace, workspace_bytes);
  if (st != CUBLAS_STATUS_SUCCESS) {
    mlxr_cublas_close(b);
    return mlxr_errf(err, err_len, MLXR_ERR_UNSUPPORTED, "cuBLAS could not start (status %d)", (int)st);
  }
  *out = b;
  return MLXR_OK;
}

void mlxr_cublas_close(mlxr_cublas *b) {
  if (!b) return;
  if (b->handle) b->destroy(b->handle);
  dlclose(b->lib);
  free(b);
}

cudaError_t mlxr_cublas_gemm(mlxr_cublas *b, mlxr_dtype type, const void *w, int64_t n_out,
                             int64_t n_in, const void *x, int64_t n_rows, float *y, int64_t ldy,
                             bool accumulate, const char **what) {
  *what = NULL;
  if (n_out <= 0 || n_rows <= 0 || n_in <= 0 || n_out > INT32_MAX || n_rows > INT32_MAX ||
      n_in > INT32_MAX || ldy < n_out || ldy > INT32_MAX) {
    *what = "cuBLAS product of unsupported size";
    return cudaErrorInvalidValue;
  }
  cudaDataType dt;
  switch (type) {
  case MLXR_DTYPE_F16: dt = CUDA_R_16F; break;
  case MLXR_DTYPE_BF16: dt = CUDA_R_16BF; break;
  case MLXR_DTYPE_F32: dt = CUDA_R_32F; break;
  default: *what = "cuBLAS product of an unsupported type"; return cudaErrorInvalidValue;
  }
  const float one = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  const cublasStatus_t st =
      b->gemm_ex(b->handle, CUBLAS_OP_T, CUBLAS_OP_N, (int)n_out, (int)n_rows, (int)n_in, &one, w, dt,
                 (int)n_in, x, dt, (int)n_in, &beta, y, CUDA_R_32F, (int)ldy, CUBLAS_COMPUTE_32F,
                 CUBLAS_GEMM_DEFAULT);
  if (st != CUBLAS_STATUS_SUCCESS) {
    *what = "cublasGemmEx failed";
    return cudaErrorUnknown;
  }
  return cudaGetLastError();
}
