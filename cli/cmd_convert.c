/*
 * cmd_convert.c: `mlxr convert HF_DIR -o OUT.gguf [--type f32|f16|bf16|q8_0] [--vocab-only]
 * [--name NAME]`: a Hugging Face checkpoint directory to one GGUF file (tools/convert.h).
 * Progress is drawn on stderr when stderr is a terminal; otherwise only the final one-line
 * summary is printed (also on stderr, so stdout stays clean for scripts).
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "core/common/status.h"
#include "tools/convert.h"

static const char k_usage[] =
    "usage: mlxr convert HF_DIR -o OUT.gguf [--type f32|f16|bf16|q8_0] [--vocab-only] "
    "[--name NAME]\n"
    "  HF_DIR      directory with config.json, *.safetensors, tokenizer.json,\n"
    "              tokenizer_config.json\n"
    "  -o, --output OUT.gguf   output file (written atomically)\n"
    "  --type TYPE             type of 2-D weights (default f16; 1-D tensors stay f32)\n"
    "  --vocab-only            write only the tokenizer (and general.*) metadata\n"
    "  --name NAME             general.name (default: the directory name)\n";

int mlxr_cmd_convert(int argc, char **argv) {
  static const struct option opts[] = {{"output", required_argument, NULL, 'o'},
                                       {"type", required_argument, NULL, 'T'},
                                       {"outtype", required_argument, NULL, 'T'},
                                       {"vocab-only", no_argument, NULL, 'v'},
                                       {"name", required_argument, NULL, 'n'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  mlxr_convert_params p = mlxr_convert_default_params();
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
    switch (c) {
    case 'o': p.out_path = optarg; break;
    case 'T': {
      int t = mlxr_dtype_from_name(optarg);
      if (t != MLXR_DTYPE_F32 && t != MLXR_DTYPE_F16 && t != MLXR_DTYPE_BF16 &&
          t != MLXR_DTYPE_Q8_0) {
        fprintf(stderr, "mlxr convert: --type must be f32, f16, bf16 or q8_0 (got '%s'); use "
                        "`mlxr quantize` for other types\n",
                optarg);
        return 2;
      }
      p.out_type = (mlxr_dtype)t;
      break;
    }
    case 'v': p.vocab_only = true; break;
    case 'n': p.name = optarg; break;
    case 'h': fputs(k_usage, stdout); return 0;
    default: fputs(k_usage, stderr); return 2;
    }
  }
  if (optind != argc - 1 || !p.out_path) {
    fputs(k_usage, stderr);
    return 2;
  }
  p.hf_dir = argv[optind];
  if (isatty(STDERR_FILENO)) {
    p.progress = mlxr_tool_progress_stderr;
    p.progress_user = (void *)"convert";
  }
  char err[1024] = "";
  mlxr_convert_stats st;
  int rc = mlxr_convert_hf(&p, &st, err, sizeof err);
  if (rc < 0) {
    fprintf(stderr, "mlxr convert: %s\n", err[0] ? err : mlxr_status_str(rc));
    return 1;
  }
  if (p.vocab_only)
    fprintf(stderr, "mlxr convert: wrote %s (vocab only, arch %s)\n", p.out_path, st.arch);
  else
    fprintf(stderr,
            "mlxr convert: wrote %s (arch %s, %lld tensors, %.1f MiB, type %s%s)\n", p.out_path,
            st.arch, (long long)st.n_tensors, (double)st.data_bytes / 1048576.0,
            mlxr_dtype_name(p.out_type), st.n_fallback ? ", some tensors f16 by shape" : "");
  return 0;
}
