/*
 * commands.h: the subcommands of the `mlxr` CLI. cli/main.c dispatches argv[1] to one of these;
 * each lives in its own cli/cmd_<name>.c, parses its own options with getopt_long (options before
 * positional arguments), and returns the process exit status (0 ok, 1 runtime error, 2 usage).
 * argv[0] is the subcommand name.
 */
#ifndef MLXR_CLI_COMMANDS_H
#define MLXR_CLI_COMMANDS_H

int mlxr_cmd_run(int argc, char **argv);        /* cmd_run.c */
int mlxr_cmd_logits(int argc, char **argv);     /* cmd_logits.c */
int mlxr_cmd_tokenize(int argc, char **argv);   /* cmd_tokenize.c */
int mlxr_cmd_detokenize(int argc, char **argv); /* cmd_tokenize.c */
int mlxr_cmd_bench(int argc, char **argv);      /* cmd_bench.c */
int mlxr_cmd_convert(int argc, char **argv);    /* cmd_convert.c */
int mlxr_cmd_quantize(int argc, char **argv);   /* cmd_quantize.c */
int mlxr_cmd_serve(int argc, char **argv);      /* cmd_serve.c */
int mlxr_cmd_render_template(int argc, char **argv); /* cmd_render_template.c */
int mlxr_cmd_devices(int argc, char **argv);    /* cmd_devices.c */
int mlxr_cmd_list(int argc, char **argv);       /* cmd_models.c */
int mlxr_cmd_ps(int argc, char **argv);         /* cmd_models.c */
int mlxr_cmd_show(int argc, char **argv);       /* cmd_models.c */
int mlxr_cmd_cp(int argc, char **argv);         /* cmd_models.c */
int mlxr_cmd_rm(int argc, char **argv);         /* cmd_models.c */
int mlxr_cmd_create(int argc, char **argv);     /* cmd_models.c */

#endif
