/*
 * convert_tokenizer.h: Hugging Face tokenizer.json + tokenizer_config.json -> GGUF tokenizer
 * metadata (tokenizer.ggml.* as llama.cpp reads them, plus the full HF pipeline as JSON under
 * tokenizer.mlxr.* so that MLXR reproduces HF's encoding exactly).
 */
#ifndef MLXR_TOOLS_CONVERT_TOKENIZER_H
#define MLXR_TOOLS_CONVERT_TOKENIZER_H

#include <stddef.h>

#include "core/formats/gguf.h"

/* Read HF_DIR/tokenizer.json and HF_DIR/tokenizer_config.json (optional) and set the tokenizer
 * keys on w. Returns 0 or a negative mlxr_status with a message in err. */
int mlxr_convert_tokenizer(const char *hf_dir, mlxr_gguf_writer *w, char *err, size_t err_len);

#endif
