/*
 * llamacpp_tool.c: llama.cpp's own quantizer and dequantizer as a command-line tool, for the
 * llama.cpp golden tests. Nothing here is MLXR code.
 *
 *   llamacpp-tool quantize IN.gguf OUT.gguf TYPE [NTHREADS]
 *   llamacpp-tool dequantize IN.gguf TENSOR OUT.f32
 *
 * quantize: TYPE is one ggml block type: q4_0 q4_1 q5_0 q5_1 q8_0 q2_k q3_k q4_k q5_k q6_k
 * iq4_nl iq4_xs f16 bf16. Every 2-D tensor (token embeddings and the output head included)
 * becomes exactly that type ("pure" mode: no Q4_K_M-style per-tensor mixes, so a test knows what
 * each tensor holds); 1-D tensors (norms, biases) stay f32, as llama.cpp always keeps them.
 * llama.cpp falls back to a compatible type on its own when a row length is not a multiple of the
 * block size.
 *
 * dequantize: writes tensor TENSOR of IN.gguf as raw float32 (ggml element order, ne[0] fastest),
 * converted by ggml's own to_float for its type (dequantize_row_* in ggml-quants.c). Tests use it
 * to check an independent dequantizer and MLXR-written blocks against llama.cpp's reading of them.
 *
 * How it works: node-llama-cpp ships llama.cpp as shared libraries (libllama.v*.so and
 * libggml-base.so in the @node-llama-cpp/linux-x64 package) that export llama_model_quantize(),
 * the gguf_* reader and ggml_get_type_traits(), but neither the package nor its Node addon offers
 * a command for them. scripts/fetch.d/20-llamacpp.sh compiles this file against the llama.h /
 * ggml.h / gguf.h that match those binaries (from the llama.cpp source bundle inside the
 * node-llama-cpp package) and links it to the prebuilt libraries, so the blocks are written and
 * read by the very llama.cpp build the tests compare against.
 *
 * Exit status: 0 on success, 1 on a failed operation, 2 on bad arguments.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ggml.h"
#include "gguf.h"
#include "llama.h"

typedef struct quant_name {
  const char *name;       /* as MLXR and ggml print it, matched case-insensitively */
  enum llama_ftype ftype; /* the llama.cpp file type whose default block type is that type */
} quant_name;

static const quant_name k_quant_names[] = {
    {"q4_0", LLAMA_FTYPE_MOSTLY_Q4_0},     {"q4_1", LLAMA_FTYPE_MOSTLY_Q4_1},
    {"q5_0", LLAMA_FTYPE_MOSTLY_Q5_0},     {"q5_1", LLAMA_FTYPE_MOSTLY_Q5_1},
    {"q8_0", LLAMA_FTYPE_MOSTLY_Q8_0},     {"q2_k", LLAMA_FTYPE_MOSTLY_Q2_K},
    {"q3_k", LLAMA_FTYPE_MOSTLY_Q3_K_S},   {"q4_k", LLAMA_FTYPE_MOSTLY_Q4_K_S},
    {"q5_k", LLAMA_FTYPE_MOSTLY_Q5_K_S},   {"q6_k", LLAMA_FTYPE_MOSTLY_Q6_K},
    {"iq4_nl", LLAMA_FTYPE_MOSTLY_IQ4_NL}, {"iq4_xs", LLAMA_FTYPE_MOSTLY_IQ4_XS},
    {"f16", LLAMA_FTYPE_MOSTLY_F16},       {"bf16", LLAMA_FTYPE_MOSTLY_BF16},
};

/* llama.cpp logs through this; keep warnings and errors, drop the per-tensor progress lines. */
static void tool_log(enum ggml_log_level level, const char *text, void *user_data) {
  (void)user_data;
  if (level == GGML_LOG_LEVEL_ERROR || level == GGML_LOG_LEVEL_WARN) {
    fputs(text, stderr);
  }
}

static int cmd_quantize(int argc, char **argv) {
  if (argc < 5 || argc > 6) {
    fprintf(stderr, "usage: %s quantize IN.gguf OUT.gguf TYPE [NTHREADS]\n", argv[0]);
    return 2;
  }
  const quant_name *q = NULL;
  for (size_t i = 0; i < sizeof k_quant_names / sizeof k_quant_names[0]; i++) {
    if (strcasecmp(argv[4], k_quant_names[i].name) == 0) {
      q = &k_quant_names[i];
    }
  }
  if (q == NULL) {
    fprintf(stderr, "%s: unknown type '%s'\n", argv[0], argv[4]);
    return 2;
  }
  int nthread = 0;
  if (argc == 6) {
    char *end = NULL;
    long v = strtol(argv[5], &end, 10);
    if (end == argv[5] || *end != '\0' || v < 0 || v > 1024) {
      fprintf(stderr, "%s: bad thread count '%s'\n", argv[0], argv[5]);
      return 2;
    }
    nthread = (int)v;
  }

  llama_backend_init();
  llama_model_quantize_params params = llama_model_quantize_default_params();
  params.ftype = q->ftype;
  params.nthread = nthread;
  params.pure = true; /* every 2-D tensor gets the requested type */
  params.quantize_output_tensor = true;
  uint32_t rc = llama_model_quantize(argv[2], argv[3], &params);
  llama_backend_free();
  if (rc != 0) {
    fprintf(stderr, "%s: llama_model_quantize failed for %s -> %s (%s)\n", argv[0], argv[2],
            argv[3], q->name);
    return 1;
  }
  return 0;
}

static int cmd_dequantize(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: %s dequantize IN.gguf TENSOR OUT.f32\n", argv[0]);
    return 2;
  }
  struct gguf_init_params ip = {.no_alloc = true, .ctx = NULL};
  struct gguf_context *g = gguf_init_from_file(argv[2], ip);
  if (g == NULL) {
    fprintf(stderr, "%s: cannot read %s as GGUF\n", argv[0], argv[2]);
    return 1;
  }
  int rc = 1;
  void *raw = NULL;
  float *out = NULL;
  FILE *in = NULL;
  FILE *of = NULL;
  int64_t ti = gguf_find_tensor(g, argv[3]);
  if (ti < 0) {
    fprintf(stderr, "%s: no tensor '%s' in %s\n", argv[0], argv[3], argv[2]);
    goto done;
  }
  enum ggml_type type = gguf_get_tensor_type(g, ti);
  const struct ggml_type_traits *tr = ggml_get_type_traits(type);
  size_t nbytes = gguf_get_tensor_size(g, ti);
  size_t tsize = ggml_type_size(type);
  int64_t bsize = ggml_blck_size(type);
  if (tr == NULL || tr->to_float == NULL || tsize == 0 || bsize <= 0 || nbytes % tsize != 0) {
    fprintf(stderr, "%s: tensor '%s' has type %s, which has no to_float\n", argv[0], argv[3],
            ggml_type_name(type));
    goto done;
  }
  int64_t n = (int64_t)(nbytes / tsize) * bsize;
  raw = malloc(nbytes > 0 ? nbytes : 1);
  out = malloc((size_t)n * sizeof(float) + 1);
  if (raw == NULL || out == NULL) {
    fprintf(stderr, "%s: out of memory\n", argv[0]);
    goto done;
  }
  in = fopen(argv[2], "rb");
  long long off = (long long)(gguf_get_data_offset(g) + gguf_get_tensor_offset(g, ti));
  if (in == NULL || fseeko(in, (off_t)off, SEEK_SET) != 0 || fread(raw, 1, nbytes, in) != nbytes) {
    fprintf(stderr, "%s: cannot read the data of '%s' from %s\n", argv[0], argv[3], argv[2]);
    goto done;
  }
  tr->to_float(raw, out, n);
  of = fopen(argv[4], "wb");
  if (of == NULL || fwrite(out, sizeof(float), (size_t)n, of) != (size_t)n) {
    fprintf(stderr, "%s: cannot write %s\n", argv[0], argv[4]);
    goto done;
  }
  printf("%s %s %lld\n", argv[3], ggml_type_name(type), (long long)n);
  rc = 0;
done:
  if (of != NULL && fclose(of) != 0) {
    rc = 1;
  }
  if (in != NULL) {
    fclose(in);
  }
  free(raw);
  free(out);
  gguf_free(g);
  return rc;
}

int main(int argc, char **argv) {
  llama_log_set(tool_log, NULL);
  if (argc >= 2 && strcmp(argv[1], "quantize") == 0) {
    return cmd_quantize(argc, argv);
  }
  if (argc >= 2 && strcmp(argv[1], "dequantize") == 0) {
    return cmd_dequantize(argc, argv);
  }
  fprintf(stderr,
          "usage: %s quantize IN.gguf OUT.gguf TYPE [NTHREADS]\n"
          "       %s dequantize IN.gguf TENSOR OUT.f32\n",
          argv[0], argv[0]);
  return 2;
}
