/*
 * main.c: the `mlxr` command. Dispatches the first argument to a subcommand (cli/commands.h).
 * Environment variables, if any subcommand needs them, are read here and passed down.
 */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"

typedef struct subcommand {
  const char *name;
  int (*fn)(int argc, char **argv);
  const char *help;
} subcommand;

static const subcommand commands[] = {
    {"run", mlxr_cmd_run, "generate text from a model: run MODEL [PROMPT]"},
    {"logits", mlxr_cmd_logits, "raw logits of a token list: logits MODEL --tokens 1,2 --out FILE"},
    {"tokenize", mlxr_cmd_tokenize, "text to token ids: tokenize MODEL [TEXT]"},
    {"detokenize", mlxr_cmd_detokenize, "token ids to text: detokenize MODEL IDS..."},
    {"bench", mlxr_cmd_bench, "prompt and generation speed: bench MODEL [-p 512] [-n 128]"},
    {"convert", mlxr_cmd_convert, "Hugging Face directory to GGUF: convert HF_DIR -o OUT.gguf"},
    {"quantize", mlxr_cmd_quantize, "requantize a GGUF: quantize IN.gguf OUT.gguf TYPE"},
    {"serve", mlxr_cmd_serve, "run the OpenAI/Ollama API daemon: serve --model PATH [--port P]"},
    {"render-template", mlxr_cmd_render_template, "chat template + JSON variables -> prompt text"},
    {"devices", mlxr_cmd_devices, "the CPU and GPUs models can run on: devices [--json]"},
    {"list", mlxr_cmd_list, "models the running mlxrd has (also: ls)"},
    {"ls", mlxr_cmd_list, NULL},
    {"ps", mlxr_cmd_ps, "models loaded in the running mlxrd"},
    {"show", mlxr_cmd_show, "a model's details: show NAME [--modelfile|--template|...]"},
    {"create", mlxr_cmd_create, "a model from a Modelfile: create NAME [-f Modelfile]"},
    {"cp", mlxr_cmd_cp, "copy a model: cp SOURCE DESTINATION"},
    {"rm", mlxr_cmd_rm, "delete models: rm NAME..."},
};

static void usage(FILE *f) {
  fprintf(f, "usage: mlxr COMMAND [OPTIONS] [ARGS]\n\ncommands:\n");
  for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
    if (commands[i].help) fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].help); /* NULL: an alias */
  }
  fprintf(f, "\nRun 'mlxr COMMAND --help' for a command's options.\n");
}

int main(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
      strcmp(argv[1], "help") == 0) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
    if (strcmp(argv[1], commands[i].name) == 0) return commands[i].fn(argc - 1, argv + 1);
  }
  fprintf(stderr, "mlxr: unknown command '%s'\n\n", argv[1]);
  usage(stderr);
  return 2;
}
