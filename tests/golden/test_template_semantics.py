#!/usr/bin/python3
"""Golden test: Jinja2's semantics of none, undefined and empty values in every filter and test
MLXR's chat-template interpreter supports, over a generated matrix, against Debian's python3-jinja2.

The matrix (built by matrix() below):
  - VALUES: the kinds of value a template meets: none (as a literal and as JSON null from the
    variables, as Functionary's `set tools = none` gives), undefined (an unknown name and a missing
    key), empty string/list/tuple/dict, strings, ints, floats, bools, lists of ints, strings,
    dicts and lists, dicts;
  - every supported filter with each of its argument lists (FILTER_ARGS: no arguments, typical
    arguments, and none or undefined in each argument position), rendered as `{{ (X) | f(args) }}`
    and, to tell apart types that print alike (1 and '1', None and 'None'), `{{ [(X) | f(args)] }}`
    (the Python repr of a one-item list);
  - every supported test with its argument lists (TEST_ARGS), as `{{ (X) is t(args) }}`;
  - a row of plain language operations on the same values (iteration, `in`, `~`, `+`, attribute
    and item access, slicing, truthiness, comparisons, method calls), where none and undefined
    also behave differently from what a C programmer would guess.
Filters that Jinja2 implements as generators (map, select, batch, items, ...) are consumed with
`| list`, since a generator's repr is not something a template can rely on; Markup results
(escape, safe) are printed without the list form for the same reason.

Jinja2's environment is the one test_chat_templates.py builds (Hugging Face's settings:
ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, the default Undefined, HF's tojson,
loopcontrols, raise_exception, strftime_now). MLXR renders every case in one
`mlxr render-template --snippets` process.

How results are compared:
  - both render: the output must be identical, byte for byte;
  - both raise: the error category must be the same: Jinja2's exception class name
    (type(e).__name__: TypeError, UndefinedError, FilterArgumentError, ...) against the "Name:"
    prefix of MLXR's message ("TypeError: 'NoneType' object is not iterable"). An MLXR message
    without such a prefix (a limit, "not supported") matches nothing. The message text itself must
    match too, after MESSAGE_NORMALIZE (which rewrites the few places where Jinja2's message names
    a Python implementation detail, such as a generator's address); cases whose message still
    differs are counted apart and listed, and fail the test;
  - one renders and the other raises: a failure.

Prints mismatches (the first few per filter/test) and "N passed, N failed"; exits 1 on any failure.
"""
import copy
import json
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_chat_templates import FIXED_TIME, MLXR, make_env  # noqa: E402  (one definition of HF's environment)

# name -> template expression. Values from the variables (JSON) are given in VARS.
VALUES = {
    "none": "none",
    "json_null": "jnull",
    "undef": "undef_var",
    "undef_key": "{'a': 1}.missing",
    "empty_str": "''",
    "empty_list": "[]",
    "empty_tuple": "()",
    "empty_dict": "{}",
    "str": "'Ab c'",
    "str_num": "' 42 '",
    "str_markup": "'<b>x</b> & y'",
    "str_lines": "'a\\n\\nb'",
    "str_space": "' '",
    "str_upper": "'ÉTÉ 2'",
    "float_nan": "jnan | float",  # from a variable: Jinja folds 'nan' | float into a literal it cannot compile
    "int": "3",
    "int_neg": "-2",
    "int_zero": "0",
    "float": "2.5",
    "float_int": "1.0",
    "true": "true",
    "false": "false",
    "list_int": "[3, 1, 2]",
    "list_str": "['b', 'A', 'a']",
    "list_none": "[none, 1]",
    "list_only_none": "[none, none]",
    "list_undef": "[undef_var, 1]",
    "list_mixed": "[1, 'a', 1.0, true]",
    "tuple": "(2, 'b')",
    "list_dicts": "[{'name': 'x', 'v': 1}, {'name': 'Y', 'v': none}, {'name': 'z'}]",
    "json_list_dicts": "jtools",
    "list_lists": "[[1, 2], [3]]",
    "dict": "{'b': 2, 'a': 1}",
    "dict_nested": "{'k': {'v': none}, 'n': none}",
    "dict_int_keys": "{2: 'b', 1: none}",
}
VARS = {"jnull": None, "jnan": "nan",
        "jtools": [{"type": "function", "function": {"name": "f", "parameters": None}}, {"type": "code"}]}

# filter -> argument lists (each the text inside the parentheses, "" for no parentheses).
COMMON_NONE = ["none", "undef_var"]
FILTER_ARGS = {
    "abs": [""],
    # methods print their address (see OPERATIONS); list.pop, which Jinja's sandbox lets through, is
    # refused by MLXR (its values are shared between renders and never change)
    "attr": ["'name'", "'a'", "none", "undef_var", ""],
    "batch": ["2", "2, 'x'", "2, none", "2, undef_var", "none", "undef_var", "0", "-1", "2.0", "'2'", "2.5, 'x'", ""],
    "capitalize": [""],
    "center": ["", "6", "-1", "none", "undef_var", "2.5"],
    "count": [""],
    "d": ["", "'x'", "none", "'x', true"],
    "default": ["", "'x'", "none", "undef_var", "[]", "'x', true", "none, true", "'x', boolean=none",
                "'x', undef_var"],
    "dictsort": ["", "true", "by='value'", "false, 'value'", "by='key'", "reverse=true", "by=none", "by=undef_var",
                 "case_sensitive=none", "reverse=undef_var", "reverse=none"],
    "e": [""],
    "escape": [""],
    "first": [""],
    "float": ["", "1.5", "none", "undef_var"],
    "format": ["", "'a'", "none", "undef_var", "1, 2", "[]"],
    "indent": ["", "2", "2, true", "2, true, true", "'> '", "''", "true", "-1", "none", "undef_var", "2.5",
               "2, none", "2, undef_var"],
    "int": ["", "7", "none", "undef_var", "0, 16", "0, 0", "0, 2", "0, none", "0, undef_var"],
    "items": [""],
    "join": ["", "', '", "''", "none", "undef_var", "[]", "', ', 'name'", "attribute='v'", "attribute=0",
             "attribute=none", "attribute=undef_var"],
    "last": [""],
    "length": [""],
    "list": [""],
    "lower": [""],
    "map": ["'string'", "'upper'", "'length'", "'int'", "'tojson'", "'nosuch'", "attribute='name'",
            "attribute='name', default='d'", "attribute='name', default=none", "attribute='v'", "attribute=0",
            "attribute='function.name'", "attribute=none", "attribute=undef_var", "'default', 'x'",
            "'default', none", "none", "undef_var", "[]", ""],
    "max": ["", "true", "attribute='v'", "attribute='name'", "attribute=none", "case_sensitive=none"],
    "min": ["", "true", "attribute='v'", "attribute='name'", "attribute=0", "attribute=none", "case_sensitive=none"],
    "reject": ["", "'none'", "'defined'", "'odd'", "'eq', none", "'in', undef_var", "'string'", "'sameas', none",
               "'nosuch'", "none", "undef_var"],
    "rejectattr": ["'name'", "'v'", "'v', 'none'", "'v', 'defined'", "'v', 'eq', none", "'name', 'in', ['x']",
                   "'missing', 'defined'", "'v', 'gt', 0", "'type', 'eq', 'function'", "none", "undef_var", ""],
    "replace": ["'a', 'b'", "none, 'b'", "'a', none", "'a', 'b', none", "undef_var, 'x'", "'a', undef_var",
                "'a', 'b', 1", "'a', 'b', undef_var", "'', '-'", "'None', 'x'", "'a'", ""],
    "reverse": [""],
    "round": ["", "1", "-1", "1, 'floor'", "1, 'ceil'", "-1, 'ceil'", "none", "undef_var", "0, none",
              "0, undef_var", "none, 'floor'", "1.5"],
    "safe": [""],
    "select": ["", "'none'", "'defined'", "'odd'", "'eq', none", "'in', undef_var", "'string'", "'lt', none",
               "'sameas', none", "'in', [none]", "'nosuch'", "none", "undef_var", "[]"],
    "selectattr": ["'name'", "'v'", "'v', 'none'", "'v', 'defined'", "'v', 'eq', none", "'name', 'in', ['x']",
                   "'missing', 'defined'", "'v', 'gt', 0", "'type', 'eq', 'function'", "'function.parameters', 'none'",
                   "none", "undef_var", ""],
    "sort": ["", "true", "attribute='v'", "attribute='name'", "attribute='name,v'", "attribute=0", "attribute=none",
             "reverse=none", "reverse=undef_var", "case_sensitive=undef_var", "true, attribute='v'"],
    "string": [""],
    "striptags": [""],
    "sum": ["", "attribute='v'", "start=1", "start=none", "start=[]", "start=''", "attribute=none",
            "start=undef_var"],
    "title": [""],
    "tojson": ["", "indent=2", "indent=none", "indent='  '", "sort_keys=true", "separators=(',', ':')",
               "ensure_ascii=true", "separators=none", "sort_keys=none"],
    "trim": ["", "'x'", "''", "none", "undef_var"],
    "unique": ["", "true", "attribute='v'", "attribute='name'", "attribute=0", "attribute=none"],
    "upper": [""],
    "wordcount": [""],
}
# Jinja2 returns a generator (or a reversed iterator) from these: consume it.
GENERATOR_FILTERS = {"batch", "items", "map", "reject", "rejectattr", "select", "selectattr", "unique", "reverse"}
MARKUP_FILTERS = {"e", "escape", "safe"}

TEST_ARGS = {
    "defined": [""], "undefined": [""], "none": [""], "boolean": [""], "true": [""], "false": [""],
    "integer": [""], "float": [""], "number": [""], "string": [""], "mapping": [""], "iterable": [""],
    "sequence": [""], "callable": [""], "escaped": [""], "lower": [""], "upper": [""], "even": [""],
    "odd": [""], "filter": [""], "test": [""],
    "divisibleby": ["2", "0", "1.5", "none", "undef_var"],
    "sameas": ["none", "undef_var", "false", "true"],
    "in": ["[1, none]", "'Ab c'", "none", "undef_var", "{}", "''", "[]", "{'a': 1}", "(1, 'b')"],
}
for t in ("eq", "equalto", "==", "ne", "!=", "lt", "lessthan", "<", "le", "<=", "gt", "greaterthan", ">", "ge", ">="):
    TEST_ARGS[t] = ["1", "none", "undef_var", "'a'", "[]", "(2, 'b')"] if t in ("eq", "ne", "lt", "ge") else ["1", "none"]

# Language operations: a template with X in place of the value.
OPERATIONS = [
    "{% for i in X %}[{{ i }}]{% else %}empty{% endfor %}",
    "{{ 1 in X }}", "{{ 'a' in X }}", "{{ X in [1, none] }}", "{{ X in 'Ab c' }}",
    "{{ X ~ '|' }}", "{{ X + 1 }}", "{{ X * 2 }}", "{{ -X }}",
    "{{ X.name }}", "{{ [X.name] }}", "{{ X['a'] }}", "{{ X[0] }}", "{{ [X[0]] }}", "{{ X[1:] }}",
    "{{ X.name.first }}", "{{ X.get('a') }}", "{{ X.items() | list }}", "{{ X.strip() }}", "{{ X.keys() | list }}",
    "{% if X %}T{% else %}F{% endif %}", "{{ not X }}", "{{ X and 'y' }}", "{{ X or 'd' }}",
    "{{ X == none }}", "{{ X != none }}", "{{ X < 1 }}", "{{ X == X }}",
    "{{ X }}", "{{ [X] }}", "{{ (X,) }}", "{{ {'k': X} }}", "{{ X | tojson if X is defined else 'u' }}",
    "{% set y = X %}{{ y is none }}{{ y is defined }}", "{{ X is none or X | length == 0 }}",
    "{% if X is not none and X | length > 0 %}has{% else %}none{% endif %}",
    "{% set ns = namespace(v=X) %}{{ ns.v }}",
    "{% macro m(a=X) %}{{ a }}{% endmacro %}{{ m() }}",
    "{{ X if X else 'alt' }}", "{{ X | attr('items') is callable }}", "{{ X | attr('upper') is callable }}",
    "{{ X | default([]) | length }}", "{{ (X or []) | map(attribute='name') | list }}",
]

# Where Jinja2's message names a Python implementation detail a C interpreter cannot reproduce.
MESSAGE_NORMALIZE = [
    (re.compile(r" at 0x[0-9a-f]+"), ""),
]


def matrix():
    """[(group, label, template source)]"""
    cases = []
    for fname, arglists in FILTER_ARGS.items():
        for args in arglists:
            call = f"{fname}({args})" if args else fname
            tail = " | list" if fname in GENERATOR_FILTERS else ""
            for vname, x in VALUES.items():
                expr = f"({x}) | {call}{tail}"
                src = f"{{{{ {expr} }}}}" if fname in MARKUP_FILTERS else f"{{{{ {expr} }}}}|{{{{ [{expr}] }}}}"
                cases.append((f"filter {fname}", f"{vname} | {call}", src))
    for tname, arglists in TEST_ARGS.items():
        for args in arglists:
            call = f"{tname}({args})" if args else tname
            for vname, x in VALUES.items():
                if tname.isalpha():
                    src = f"{{{{ ({x}) is {call} }}}}"
                else:  # `x is ==(1)` is not Jinja syntax; operator tests are reached through select
                    src = f"{{{{ [({x})] | select('{tname}'{', ' + args if args else ''}) | list }}}}"
                cases.append((f"test {tname}", f"{vname} is {call}", src))
    for op in OPERATIONS:
        for vname, x in VALUES.items():
            # through a variable: Jinja folds constant expressions at compile time, and a folded
            # slice of a constant (`none[1:]`) becomes undefined where the same slice of a variable raises
            cases.append(("operation", f"{vname}: {op}", f"{{% set x = {x} %}}" + op.replace("X", "x")))
    return cases


def reference(env, src):
    try:
        # a fresh copy each time: some Jinja2 filters mutate their input (indent appends "\\n" to a list)
        return True, env.from_string(src).render(**copy.deepcopy(VARS))
    except Exception as e:  # noqa: BLE001 -- every Jinja2 error is an outcome to compare
        msg = str(e)
        for pat, rep in MESSAGE_NORMALIZE:
            msg = pat.sub(rep, msg)
        return False, (type(e).__name__, msg)


ERR_RE = re.compile(r"^([A-Za-z]+(?:Error|Exception)): ?(.*)$", re.S)
SYNTAX_RE = re.compile(r"^template syntax error, line \d+: (.*)$", re.S)


def mlxr_error(text):
    m = SYNTAX_RE.match(text)
    if m:
        return "TemplateSyntaxError", m.group(1)
    m = ERR_RE.match(text)
    return (m.group(1), m.group(2)) if m else ("(unprefixed)", text)


def run_mlxr(sources, tmp):
    """Renders every source (with VARS) in one `mlxr render-template --snippets` process; returns the
    result objects, or None after printing why."""
    path = os.path.join(tmp, "matrix.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        for src in sources:
            f.write(json.dumps({"template": src, "vars": VARS}, ensure_ascii=False) + "\n")
    p = subprocess.run([MLXR, "render-template", "--snippets", path], capture_output=True,
                       env=dict(os.environ, MLXR_FIXED_TIME=FIXED_TIME), timeout=300)
    if p.returncode != 0:
        print(f"FAIL: mlxr render-template --snippets exited {p.returncode}: {p.stderr[-1500:]!r}")
        return None
    # one JSON object a line; split on "\n" only (str.splitlines would also split inside U+2028 etc.)
    got = [json.loads(x) for x in p.stdout.decode("utf-8", errors="surrogateescape").split("\n") if x]
    if len(got) != len(sources):
        print(f"FAIL: mlxr render-template --snippets: {len(got)} results for {len(sources)} cases: {p.stderr[-500:]!r}")
        return None
    return got


def coverage_cases(env):
    """Every filter and test MLXR knows (asked through `'name' is filter/test`) must be in the
    matrix: [(kind, name, source, expected output)]."""
    out = []
    for kind, table, ours in (("filter", env.filters, FILTER_ARGS), ("test", env.tests, TEST_ARGS)):
        for name in sorted(set(table) | set(ours)):
            out.append((kind, name, f"{{{{ {name!r} is {kind} }}}}", str(name in ours)))
    return out


def compare(env, cases, got, dump):
    """Returns (passed, failed, both_raised, {group: [lines]}, {kind: count})."""
    passed = failed = both_raised = 0
    by_group = {}
    kinds = {"output": 0, "category": 0, "message": 0, "mlxr raised": 0, "jinja2 raised": 0}
    for (group, label, src), res in zip(cases, got):
        ok, want = reference(env, src)
        problem = None
        if ok and res["ok"]:
            if res["out"] != want:
                problem = ("output", f"got {res['out']!r}, want {want!r}")
        elif ok:
            problem = ("mlxr raised", f"MLXR raised {res['error']!r}, Jinja2 rendered {want!r}")
        elif res["ok"]:
            problem = ("jinja2 raised", f"Jinja2 raised {want[0]}: {want[1]}, MLXR rendered {res['out']!r}")
        else:
            both_raised += 1
            cat, msg = mlxr_error(res["error"])
            if cat != want[0]:
                problem = ("category", f"MLXR raised {res['error']!r}, Jinja2 {want[0]}: {want[1]}")
            elif msg != want[1]:
                problem = ("message", f"MLXR raised {res['error']!r}, Jinja2 {want[0]}: {want[1]}")
        if problem is None:
            passed += 1
            continue
        failed += 1
        kinds[problem[0]] += 1
        if dump:
            dump.write(json.dumps({"group": group, "label": label, "src": src, "kind": problem[0],
                                   "detail": problem[1]}) + "\n")
        by_group.setdefault(group, []).append(f"  [{problem[0]}] {label}   {src}\n      {problem[1]}")
    return passed, failed, both_raised, by_group, kinds


def main():
    if not os.access(MLXR, os.X_OK):
        print(f"FAIL: {MLXR} not built")
        return 1
    t0 = time.monotonic()
    env = make_env()
    cases = matrix()
    cover = coverage_cases(env)
    with tempfile.TemporaryDirectory() as tmp:
        got = run_mlxr([src for _, _, src in cases] + [src for _, _, src, _ in cover], tmp)
    if got is None:
        return 1
    dump = open(os.environ["MLXR_MATRIX_DUMP"], "w", encoding="utf-8") if os.environ.get("MLXR_MATRIX_DUMP") else None
    passed, failed, both_raised, by_group, kinds = compare(env, cases, got[:len(cases)], dump)
    limit = int(os.environ.get("MLXR_MATRIX_SHOW", "4"))
    for group, lst in sorted(by_group.items()):
        print(f"FAIL {group}: {len(lst)} mismatches")
        for line in lst[:limit]:
            print(line)
    unsupported = {"filter": [], "test": []}
    for (kind, name, src, want), res in zip(cover, got[len(cases):]):
        if res.get("out") == want:
            passed += 1
            if want == "False":
                unsupported[kind].append(name)
            continue
        failed += 1
        print(f"FAIL coverage: MLXR says {src} -> {res.get('out', res.get('error'))!r}; "
              f"{'add it to' if want == 'False' else 'MLXR lacks it but it is in'} {kind.upper()}_ARGS")
    print(f"matrix: {len(cases)} cases ({len(FILTER_ARGS)} filters, {len(TEST_ARGS)} tests, {len(OPERATIONS)} operations"
          f" x {len(VALUES)} values); {both_raised} raise in both (category and message compared);"
          f" {time.monotonic() - t0:.1f} s")
    for kind, names in unsupported.items():
        print(f"note: Jinja2 {kind}s MLXR does not implement (not in the matrix): {', '.join(names) or 'none'}")
    if failed:
        print("mismatches by kind: " + ", ".join(f"{k} {v}" for k, v in kinds.items() if v))
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
