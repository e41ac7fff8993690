/*
 * convert.h: Hugging Face checkpoint directory -> GGUF (`mlxr convert`).
 *
 * Input: a directory with config.json, *.safetensors (one file, or shards named by
 * model.safetensors.index.json), tokenizer.json and tokenizer_config.json. Output: one GGUF file
 * laid out as llama.cpp's convert_hf_to_gguf.py lays it out, so both MLXR and llama.cpp load it:
 * the same metadata keys ({arch}.context_length, .embedding_length, ...), the same tensor names
 * (token_embd, blk.N.attn_q, ...), the same Q/K row permutation for arch "llama", and Llama-3
 * rope scaling carried as a rope_freqs.weight tensor of per-frequency divisors.
 *
 * How it works: config.json is parsed into mlxr_hf_config (tools/hf_config.c); the architecture
 * table (tools/convert_arch.c) turns it into a plan, one entry per output tensor with the HF
 * tensor it comes from, its expected shape and how its rows move. Every source tensor is checked
 * against the plan (presence, shape, dtype; no unmapped leftovers) before anything is written.
 * The tokenizer keys come from tools/convert_tokenizer.c. The GGUF writer then streams tensor
 * data one tensor at a time from the mmap'd safetensors into OUT.tmp and renames it on success:
 * the whole model is never held in memory, and a failed conversion leaves no file under OUT.
 *
 * Threading: one conversion per call, on the calling thread. No global state.
 */
#ifndef MLXR_TOOLS_CONVERT_H
#define MLXR_TOOLS_CONVERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/common/dtype.h"

/* Progress report, called once before each tensor's data is written and once after the last
 * (i == n). bytes_* count output tensor data bytes. name is NULL on the final call. */
typedef void (*mlxr_tool_progress_fn)(void *user, int64_t i, int64_t n, uint64_t bytes_done,
                                      uint64_t bytes_total, const char *name);

typedef struct mlxr_convert_params {
  const char *hf_dir;   /* input directory */
  const char *out_path; /* output .gguf path (written atomically) */
  mlxr_dtype out_type;  /* 2-D weights: F32, F16 (default), BF16 or Q8_0 */
  bool vocab_only;      /* only general.* and tokenizer.* keys, no tensors */
  const char *name;     /* general.name; NULL = the directory's base name */
  mlxr_tool_progress_fn progress; /* optional */
  void *progress_user;
} mlxr_convert_params;

typedef struct mlxr_convert_stats {
  int64_t n_tensors;      /* tensors written */
  uint64_t data_bytes;    /* tensor data bytes written */
  uint32_t file_type;     /* general.file_type written (llama_ftype numbering) */
  int64_t n_fallback;     /* 2-D tensors stored as F16 because a row was not a multiple of
                             the requested type's block size */
  char arch[64];          /* general.architecture written */
} mlxr_convert_stats;

/* A ready-made progress callback for command-line tools: draws "label [#####.....] i/n MiB name"
 * on stderr, redrawn in place (stderr should be a terminal); user is the label (const char *). */
void mlxr_tool_progress_stderr(void *user, int64_t i, int64_t n, uint64_t bytes_done,
                               uint64_t bytes_total, const char *name);

mlxr_convert_params mlxr_convert_default_params(void);

/* Convert. Returns 0 or a negative mlxr_status with a message in err; on failure nothing
 * exists under out_path that this call created. stats may be NULL. */
int mlxr_convert_hf(const mlxr_convert_params *params, mlxr_convert_stats *stats, char *err,
                    size_t err_len);

/* llama_ftype number for "mostly <type>" (0 all F32, 1 F16, 7 Q8_0, 32 BF16, ...); -1 if the type
 * has no file-type number. */
int mlxr_convert_file_type_of(mlxr_dtype t);

#endif
