/*
 * json_schema_format.c: `format` as grammar rules: date, time, date-time (RFC 3339, calendar-
 * exact: days per month and February 29 only in leap years), uuid, email, hostname (RFC 1123),
 * ipv4, ipv6 (RFC 4291 text forms with :: compression and an embedded IPv4), uri and
 * uri-reference (RFC 3986).
 *
 * Each format is GBNF text whose rule names start with '@'; js_gen_format substitutes a prefix
 * unique to the grammar (fN-) so that formats can be used together. The rules match the string's
 * contents; the caller adds the quotes. Two variants where they differ: the spec variant takes
 * every spelling of the standard (used to validate, and in spec_defaults mode); the generation
 * variant bounds repetitions (at most 64 characters in a part, 8 labels or path segments) so a
 * model cannot ramble, and writes URIs as scheme://host/path. Both accept only ASCII, which never
 * needs JSON escapes. Formats we do not know are annotations (JSON Schema's default): -2.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common/status.h"
#include "core/runtime/grammar/json_schema_impl.h"

static const char DATE[] =
    "@ ::= @year \"-\" ( @m31 \"-\" @d31 | @m30 \"-\" @d30 | \"02-\" @d28 ) | @leap \"-02-29\"\n"
    "@year ::= [0-9]{4}\n"
    "@m31 ::= \"0\" [13578] | \"1\" [02]\n"
    "@m30 ::= \"0\" [469] | \"11\"\n"
    "@d31 ::= \"0\" [1-9] | [12] [0-9] | \"3\" [01]\n"
    "@d30 ::= \"0\" [1-9] | [12] [0-9] | \"30\"\n"
    "@d28 ::= \"0\" [1-9] | \"1\" [0-9] | \"2\" [0-8]\n"
    "@leap ::= [0-9] [0-9] ( \"0\" [48] | [2468] [048] | [13579] [26] ) | ( [02468] [048] | [13579] [26] ) \"00\"\n";

static const char TIME_SPEC[] =
    "@ ::= @hh \":\" @mm \":\" @ss ( \".\" [0-9]+ )? @tz\n"
    "@hh ::= [01] [0-9] | \"2\" [0-3]\n"
    "@mm ::= [0-5] [0-9]\n"
    "@ss ::= [0-5] [0-9]\n"
    "@tz ::= [zZ] | [+\\-] @hh \":\" @mm\n";
static const char TIME_GEN[] =
    "@ ::= @hh \":\" @mm \":\" @ss ( \".\" [0-9]{1,6} )? @tz\n"
    "@hh ::= [01] [0-9] | \"2\" [0-3]\n"
    "@mm ::= [0-5] [0-9]\n"
    "@ss ::= [0-5] [0-9]\n"
    "@tz ::= \"Z\" | [+\\-] @hh \":\" @mm\n";

static const char UUID[] = "@ ::= @h{8} \"-\" @h{4} \"-\" @h{4} \"-\" @h{4} \"-\" @h{12}\n@h ::= [0-9a-fA-F]\n";

static const char IPV4[] =
    "@ ::= @oct \".\" @oct \".\" @oct \".\" @oct\n"
    "@oct ::= \"25\" [0-5] | \"2\" [0-4] [0-9] | \"1\" [0-9] [0-9] | [1-9] [0-9] | [0-9]\n";

static const char IPV6[] =
    "@ ::= ( ( @h16 \":\" ){6} @ls32\n"
    "  | \"::\" ( @h16 \":\" ){5} @ls32\n"
    "  | @h16? \"::\" ( @h16 \":\" ){4} @ls32\n"
    "  | ( ( @h16 \":\" ){0,1} @h16 )? \"::\" ( @h16 \":\" ){3} @ls32\n"
    "  | ( ( @h16 \":\" ){0,2} @h16 )? \"::\" ( @h16 \":\" ){2} @ls32\n"
    "  | ( ( @h16 \":\" ){0,3} @h16 )? \"::\" @h16 \":\" @ls32\n"
    "  | ( ( @h16 \":\" ){0,4} @h16 )? \"::\" @ls32\n"
    "  | ( ( @h16 \":\" ){0,5} @h16 )? \"::\" @h16\n"
    "  | ( ( @h16 \":\" ){0,6} @h16 )? \"::\" )\n"
    "@h16 ::= [0-9a-fA-F]{1,4}\n"
    "@ls32 ::= @h16 \":\" @h16 | @oct \".\" @oct \".\" @oct \".\" @oct\n"
    "@oct ::= \"25\" [0-5] | \"2\" [0-4] [0-9] | \"1\" [0-9] [0-9] | [1-9] [0-9] | [0-9]\n";

static const char HOSTNAME_SPEC[] =
    "@ ::= @label ( \".\" @label )* \".\"?\n"
    "@label ::= [A-Za-z0-9] ( [A-Za-z0-9\\-]{0,61} [A-Za-z0-9] )?\n";
static const char HOSTNAME_GEN[] =
    "@ ::= @label ( \".\" @label ){0,7}\n"
    "@label ::= [A-Za-z0-9] ( [A-Za-z0-9\\-]{0,30} [A-Za-z0-9] )?\n";

/* local part: dot-separated atoms (RFC 5322 atext; the generation variant leaves out the rarer
 * specials, which also satisfies the patterns Zod and others add) */
static const char EMAIL_SPEC[] =
    "@ ::= @atom ( \".\" @atom )* \"@\" ( @label \".\" )+ @label\n"
    "@atom ::= [A-Za-z0-9!#$%&'*+/=?\\^_`{|}~\\-]+\n"
    "@label ::= [A-Za-z0-9] ( [A-Za-z0-9\\-]{0,61} [A-Za-z0-9] )?\n";
static const char EMAIL_GEN[] =
    "@ ::= @atom ( \".\" @atom ){0,3} \"@\" ( @label \".\" ){1,4} [A-Za-z]{2,24}\n"
    "@atom ::= [A-Za-z0-9_+\\-]{1,32}\n"
    "@label ::= [A-Za-z0-9] ( [A-Za-z0-9\\-]{0,30} [A-Za-z0-9] )?\n";

/* RFC 3986 section 3 (IPvFuture left out) */
static const char URI_PARTS[] =
    "@scheme ::= [A-Za-z] [A-Za-z0-9+.\\-]*\n"
    "@authority ::= ( @userinfo \"@\" )? @host ( \":\" [0-9]* )?\n"
    "@userinfo ::= ( @unres | @pct | @subd | \":\" )*\n"
    "@host ::= \"[\" @ipv6 \"]\" | @regname\n"
    "@regname ::= ( @unres | @pct | @subd )*\n"
    "@pathabempty ::= ( \"/\" @pchar* )*\n"
    "@pathabs ::= \"/\" ( @pchar+ ( \"/\" @pchar* )* )?\n"
    "@pathrootless ::= @pchar+ ( \"/\" @pchar* )*\n"
    "@pathnoscheme ::= ( @unres | @pct | @subd | \"@\" )+ ( \"/\" @pchar* )*\n"
    "@pchar ::= @unres | @pct | @subd | [:@]\n"
    "@qf ::= ( @pchar | [/?] )*\n"
    "@unres ::= [A-Za-z0-9._~\\-]\n"
    "@pct ::= \"%\" [0-9a-fA-F] [0-9a-fA-F]\n"
    "@subd ::= [!$&'()*+,;=]\n";
static const char URI_SPEC[] =
    "@ ::= @scheme \":\" ( \"//\" @authority @pathabempty | @pathabs | @pathrootless | \"\" ) ( \"?\" @qf )? ( \"#\" @qf )?\n";
static const char URIREF_SPEC[] =
    "@ ::= ( @scheme \":\" ( \"//\" @authority @pathabempty | @pathabs | @pathrootless | \"\" ) ( \"?\" @qf )? ( \"#\" @qf )?\n"
    "  | ( \"//\" @authority @pathabempty | @pathabs | @pathnoscheme | \"\" ) ( \"?\" @qf )? ( \"#\" @qf )? )\n";
static const char URI_GEN[] =
    "@ ::= ( \"http\" \"s\"? | \"ftp\" ) \"://\" @label ( \".\" @label ){0,4} ( \"/\" @seg ){0,8} ( \"?\" @seg )? ( \"#\" @seg )?\n"
    "@label ::= [A-Za-z0-9] ( [A-Za-z0-9\\-]{0,30} [A-Za-z0-9] )?\n"
    "@seg ::= [A-Za-z0-9._~\\-]{0,32}\n";

typedef struct fmt_def {
  const char *name;
  const char *spec[3]; /* rule texts, concatenated */
  const char *gen[3];
} fmt_def;

static const fmt_def FORMATS[] = {
    {"date", {DATE, NULL, NULL}, {DATE, NULL, NULL}},
    {"time", {TIME_SPEC, NULL, NULL}, {TIME_GEN, NULL, NULL}},
    {"date-time", {"@ ::= @d-- [Tt] @t--\n", NULL, NULL}, {"@ ::= @d-- \"T\" @t--\n", NULL, NULL}},
    {"uuid", {UUID, NULL, NULL}, {UUID, NULL, NULL}},
    {"ipv4", {IPV4, NULL, NULL}, {IPV4, NULL, NULL}},
    {"ipv6", {IPV6, NULL, NULL}, {IPV6, NULL, NULL}},
    {"hostname", {HOSTNAME_SPEC, NULL, NULL}, {HOSTNAME_GEN, NULL, NULL}},
    {"email", {EMAIL_SPEC, NULL, NULL}, {EMAIL_GEN, NULL, NULL}},
    {"uri", {URI_SPEC, URI_PARTS, NULL}, {URI_GEN, NULL, NULL}},
    {"uri-reference", {URIREF_SPEC, URI_PARTS, NULL}, {URI_GEN, NULL, NULL}},
};

static const fmt_def *find_format(const char *name) {
  for (size_t k = 0; k < sizeof FORMATS / sizeof FORMATS[0]; k++) {
    if (strcmp(FORMATS[k].name, name) == 0) return &FORMATS[k];
  }
  return NULL;
}

/* Appends text with each '@' replaced by prefix (and "@d--"/"@t--" by the date/time rules of
 * date-time, which are appended once by the caller under prefix + "d"/"t"). */
static void add_rules(js_sbuf *o, const char *text, const char *prefix) {
  char quote = 0; /* inside "..." or [...] (where '@' is a character, not a rule name) */
  for (const char *p = text; *p; p++) {
    if (quote) {
      js_sb_add(o, p, 1);
      if (*p == '\\' && p[1]) js_sb_add(o, ++p, 1);
      else if (*p == quote) quote = 0;
      continue;
    }
    if (*p == '"' || *p == '[') {
      quote = *p == '"' ? '"' : ']';
      js_sb_add(o, p, 1);
      continue;
    }
    if (*p != '@') {
      js_sb_add(o, p, 1);
      continue;
    }
    if (strncmp(p, "@d--", 4) == 0 || strncmp(p, "@t--", 4) == 0) {
      js_sb_fmt(o, "%s%c-", prefix, p[1]);
      p += 3;
      continue;
    }
    js_sb_str(o, prefix);
    /* "@ ::=" names the format's top rule "<prefix>top" */
    if (p[1] == ' ' || p[1] == '?' || p[1] == '\n') js_sb_str(o, "top");
  }
}

/* All rules of a format under prefix; its top rule is <prefix>top. */
static void add_format(js_sbuf *o, const fmt_def *f, bool spec, const char *prefix) {
  const char *const *parts = spec ? f->spec : f->gen;
  for (int k = 0; k < 3 && parts[k]; k++) add_rules(o, parts[k], prefix);
  if (strcmp(f->name, "uri") == 0 || strcmp(f->name, "uri-reference") == 0) {
    if (spec) { /* @host refers to @ipv6 */
      char sub[64];
      snprintf(sub, sizeof sub, "%sipv6", prefix);
      js_sb_fmt(o, "%s ::= %sipv6-top\n", sub, prefix);
      char p2[64];
      snprintf(p2, sizeof p2, "%sipv6-", prefix);
      add_rules(o, IPV6, p2);
    }
  }
  if (strcmp(f->name, "date-time") == 0) {
    char p2[64];
    snprintf(p2, sizeof p2, "%sd-", prefix);
    add_rules(o, DATE, p2);
    js_sb_fmt(o, "%sd- ::= %sd-top\n", prefix, prefix);
    snprintf(p2, sizeof p2, "%st-", prefix);
    add_rules(o, spec ? TIME_SPEC : TIME_GEN, p2);
    js_sb_fmt(o, "%st- ::= %st-top\n", prefix, prefix);
  }
}

int js_gen_format(js_conv *c, const char *format) {
  const fmt_def *f = find_format(format);
  if (!f) return -2;
  const int id = js_new_rule(c);
  char prefix[32];
  snprintf(prefix, sizeof prefix, "f%d-", id);
  add_format(&c->out, f, c->spec, prefix);
  js_sb_fmt(&c->out, "r%d ::= \"\\\"\" f%d-top \"\\\"\"\n", id, id);
  return id;
}

char *js_format_gbnf(const char *format) {
  const fmt_def *f = find_format(format);
  if (!f) return NULL;
  js_sbuf b = {0};
  js_sb_str(&b, "root ::= \"\\\"\" f-top \"\\\"\"\n");
  add_format(&b, f, true, "f-");
  if (b.oom) {
    free(b.p);
    return NULL;
  }
  return b.p;
}
