"""Small templates exercising the Jinja2 language broadly (not tuned to any chat template); used by
tests/golden/test_chat_templates.py, rendered by Jinja2 and by `mlxr render-template --snippets`.
Each entry: (template source, variables)."""

V = {"s": "Hello, World", "u": "héllo wörld 東京 🙂", "n": 7, "f": 2.5, "neg": -3, "z": 0, "b": True,
     "l": [3, 1, 2], "sl": ["b", "A", "c", "a"], "e": [], "none": None,
     "d": {"b": 2, "a": 1, "C": 3}, "nested": {"x": {"y": [10, 20, {"z": "deep"}]}},
     "people": [{"name": "Ann", "age": 31, "role": "admin"}, {"name": "bob", "age": 25},
                {"name": "Cy", "age": 31, "role": "user"}],
     "ws": "  \t padded \n ", "multi": "line1\nline2\n\nline4", "msg": {"role": "user", "content": "hi", "items": 5}}

SNIPPETS = [
    # literals and printing
    "{{ 1 }} {{ 1.0 }} {{ 1e-5 }} {{ 1.5e300 }} {{ 123456789012345678 }} {{ 0.1 + 0.2 }} {{ 1e16 }} {{ 2.0 ** 60 }}",
    "{{ 'a\\'b' }} {{ \"q\\\"x\" }} {{ 'tab\\there' }} {{ '\\u00e9\\x41\\n' }} {{ 'a' 'b' }}",
    "{{ [1, 'a', none, true, 1.5] }} {{ {'k': [1, {'j': none}]} }} {{ (1,) }} {{ (1, 2) }} {{ () }}",
    "{{ ['it\\'s', \"q\\\"\", 'both\\'\"', '\\n\\t\\\\'] }} {{ ['é', '\\x07', '\\u200b'] }}",
    "{{ none }} {{ true }} {{ False }} {{ undefined_var }}|{{ msg.missing }}|",
    # arithmetic
    "{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 2 ** 3 ** 2 }}",
    "{{ 7.5 // 2 }} {{ -7.5 % 2 }} {{ n * f }} {{ n - neg }} {{ -n }} {{ +f }} {{ true + 1 }} {{ 10 / 4 * 2 }}",
    "{{ 'ab' * 3 }} {{ 3 * 'x' }} {{ [1] * 3 }} {{ 'a' ~ 1 ~ none ~ [1] }} {{ 'a' + 'b' }} {{ [1] + [2] }}",
    "{{ 1 + 2 * 3 - 4 / 2 }} {{ (1 + 2) * 3 }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 1 == 1.0 }} {{ 'a' != 'b' }}",
    "{{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }} {{ (1, 'a') == (1, 'a') }} {{ [1] == (1,) }} {{ {'a': 1} == {'a': 1} }}",
    # logic
    "{{ 1 and 2 }} {{ 0 and 2 }} {{ 0 or 'x' }} {{ '' or none }} {{ not 0 }} {{ not 'a' }} {{ none or [] }}",
    "{{ 'y' if b else 'n' }} {{ 'y' if z else 'n' }} {{ 'y' if z }}|{{ 1 if 0 else 2 if 0 else 3 }}",
    "{{ 2 in l }} {{ 5 not in l }} {{ 'ell' in s }} {{ 'a' in d }} {{ 'zz' in d }} {{ 1 in [1.0] }}",
    # attribute / item access
    "{{ nested.x.y[2].z }} {{ nested['x']['y'][-1]['z'] }} {{ l[0] }} {{ l[-1] }} {{ l[9] }}| {{ s[0] }} {{ u[1] }} {{ u[-1] }}",
    "{{ msg['items'] }}|{{ d.keys() | list }} {{ msg.role }} {{ msg.get('role') }} {{ msg.get('x', 'dflt') }} {{ msg.get('x') }}",
    "{{ l.0 }} {{ people.1.name }} {{ none.attr }}|{{ s.nope }}|",
    # slicing
    "{{ s[1:4] }} {{ s[:3] }} {{ s[-5:] }} {{ s[::2] }} {{ s[::-1] }} {{ s[5:1:-1] }} {{ s[100:] }}|{{ u[::-1] }}",
    "{{ l[1:] }} {{ l[:-1] }} {{ l[::-1] }} {{ l[-2::-1] }} {{ l[0:3:2] }} {{ (1, 2, 3)[1:] }} {{ l[5:9] }}",
    # string methods
    "{{ ws.strip() }}|{{ ws.lstrip() }}|{{ ws.rstrip() }}|{{ 'xxhixx'.strip('x') }}|{{ '--a-'.lstrip('-') }}|{{ 'ab\\n\\n'.rstrip('\\n') }}",
    "{{ s.split(',') }} {{ 'a b  c '.split() }} {{ 'a,b,c'.split(',', 1) }} {{ 'a,b,c'.rsplit(',', 1) }} {{ ''.split() }} {{ ''.split(',') }}",
    "{{ s.startswith('Hell') }} {{ s.endswith(('x', 'ld')) }} {{ s.replace('l', 'L') }} {{ s.replace('l', '', 1) }} {{ 'ab'.replace('', '-') }}",
    "{{ s.upper() }} {{ s.lower() }} {{ 'hello wORLD x1y'.title() }} {{ 'hELLO'.capitalize() }} {{ u.upper() }} {{ 'ǅungla'.lower() }}",
    "{{ s.find('o') }} {{ s.find('zz') }} {{ s.rfind('o') }} {{ u.find('東') }} {{ s.count('l') }} {{ '-'.join(['a', 'b']) }} {{ multi.splitlines() }}",
    "{{ '{} and {}'.format('x', 1) }} {{ '{0}{0}{name}'.format('a', name='n') }} {{ '12'.isdigit() }} {{ 'ab'.isalpha() }} {{ ' '.isspace() }}",
    "{{ '%s=%d' % ('a', 3) }} {{ '%05.1f|%x|%r' % (3.14159, 255, 'q') }} {{ '%s' % [1] }} {{ '100%%' % () }}",
    # filters
    "{{ l | length }} {{ s | length }} {{ u | length }} {{ d | count }} {{ undefined_var | length }} {{ e | length }}",
    "{{ l | join(', ') }} {{ sl | join }} {{ people | join(' ', attribute='name') }} {{ [1, none, 'x'] | join('-') }}",
    "{{ l | sort }} {{ sl | sort }} {{ sl | sort(case_sensitive=true) }} {{ l | sort(reverse=true) }} {{ people | sort(attribute='age') | map(attribute='name') | list }}",
    "{{ people | sort(attribute='age', reverse=true) | map(attribute='name') | join(',') }} {{ people | map(attribute='role', default='none') | list }}",
    "{{ l | first }} {{ l | last }} {{ e | first }}|{{ s | first }} {{ l | min }} {{ l | max }} {{ sl | min }} {{ sl | max }} {{ people | max(attribute='age') }}",
    "{{ l | sum }} {{ people | sum(attribute='age') }} {{ [0.5, 1] | sum }} {{ l | sum(start=10) }} {{ [[1], [2]] | sum(start=[]) }}",
    "{{ d | dictsort }} {{ d | dictsort(true) }} {{ d | dictsort(by='value', reverse=true) }} {{ d | items | list }} {{ d.items() | list }}",
    "{{ sl | unique | list }} {{ sl | unique(case_sensitive=true) | list }} {{ [1, 1.0, true, 2] | unique | list }} {{ people | unique(attribute='age') | map(attribute='name') | list }}",
    "{{ people | selectattr('role') | map(attribute='name') | list }} {{ people | rejectattr('role') | map(attribute='name') | list }}",
    "{{ people | selectattr('age', 'equalto', 31) | map(attribute='name') | list }} {{ people | selectattr('role', 'defined') | list | length }} {{ people | selectattr('name', 'in', ['Ann', 'Cy']) | list | length }}",
    "{{ l | select('odd') | list }} {{ l | reject('odd') | list }} {{ [0, 1, '', 'a', none] | select | list }} {{ l | select('gt', 1) | list }} {{ l | select('divisibleby', 3) | list }}",
    "{{ sl | map('upper') | list }} {{ l | map('string') | join }} {{ [' a ', 'b '] | map('trim') | list }} {{ ['a,b'] | map('replace', ',', ';') | list }}",
    "{{ ws | trim }}|{{ 'xxaxx' | trim('x') }}|{{ s | lower }} {{ s | upper }} {{ 'hello-world foo(bar)' | title }} {{ 'hELLo' | capitalize }}",
    "{{ s | replace('o', '0') }} {{ s | replace('l', 'L', 2) }} {{ l | reverse | list }} {{ s | reverse }} {{ l | list }} {{ 'ab' | list }} {{ d | list }}",
    "{{ 42 | string }} {{ none | string }} {{ [1] | string }} {{ 3.7 | int }} {{ '42' | int }} {{ ' 12 ' | int }} {{ 'x' | int }} {{ 'x' | int(5) }} {{ '0x1A' | int(0, 16) }} {{ '3.9' | int }}",
    "{{ '2.5' | float }} {{ 3 | float }} {{ 'abc' | float }} {{ -3 | abs }} {{ -2.5 | abs }} {{ 2.5 | round }} {{ 3.5 | round }} {{ 2.675 | round(2) }} {{ 2.1 | round(0, 'ceil') }} {{ 2.9 | round(method='floor') }} {{ 7 | round }}",
    "{{ undefined_var | default('dflt') }} {{ none | default('x') }} {{ '' | default('x', true) }} {{ 0 | d('zero', boolean=true) }} {{ s | d }}",
    "{{ multi | indent }}|{{ multi | indent(2, true) }}|{{ multi | indent(first=true, blank=true) }}|{{ 'a\\nb' | indent('> ') }}",
    "{{ '<a href=\"x\">T&amp;</a>' | e }} {{ '<b>x</b>  y' | striptags }} {{ 'one two  three' | wordcount }} {{ 'x' | center(7) }}|",
    "{{ l | batch(2) | list }} {{ l | batch(2, 'pad') | list }} {{ '%s-%s' | format('a', 'b') }} {{ nested | tojson }} {{ 'x' | safe }}",
    "{{ d | tojson(indent=2) }} {{ d | tojson(sort_keys=true) }} {{ [1, 'é', none, 1.5, 1e-7] | tojson(separators=(',', ':')) }} {{ u | tojson(ensure_ascii=true) }}",
    "{{ {'a': [], 'b': {}, 'c': [1, [2, []]]} | tojson(indent=4) }} {{ {1: 'int key', 'x': true} | tojson }} {{ '\"\\\\\\n\\u0001' | tojson }}",
    # tests
    "{{ n is odd }} {{ n is even }} {{ n is divisibleby 7 }} {{ n is number }} {{ f is float }} {{ b is number }} {{ b is integer }} {{ n is integer }}",
    "{{ s is string }} {{ d is mapping }} {{ l is iterable }} {{ s is iterable }} {{ n is iterable }} {{ l is sequence }} {{ undefined_var is iterable }}",
    "{{ none is none }} {{ undefined_var is defined }} {{ undefined_var is undefined }} {{ b is true }} {{ b is false }} {{ z is boolean }} {{ b is boolean }}",
    "{{ n is eq 7 }} {{ n is ne 7 }} {{ n is lt 8 }} {{ n is ge 8 }} {{ n is gt(6) }} {{ 'a' is in 'cat' }} {{ 2 is in l }} {{ s is lower }} {{ 'ABC' is upper }}",
    "{{ range is callable }} {{ s is not string }} {{ not n is odd }} {{ none is not none }} {{ l is sameas l }}",
    # statements
    "{% for x in l %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/{{ loop.revindex0 }}/{{ loop.first }}/{{ loop.last }}/{{ loop.length }}:{{ x }} {% endfor %}",
    "{% for x in l %}{{ loop.previtem }}<{{ x }}>{{ loop.nextitem }} {{ loop.cycle('odd', 'even') }};{% endfor %}",
    "{% for x in e %}never{% else %}empty{% endfor %} {% for x in l if x > 1 %}{{ x }}{{ loop.length }}{% endfor %} {% for x in l if x > 5 %}a{% else %}none{% endfor %}",
    "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %} {% for k in d %}{{ k }}{% endfor %} {% for a, b in [(1, 2), [3, 4]] %}{{ a + b }}{% endfor %} {% for c in 'héy' %}[{{ c }}]{% endfor %}",
    "{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 5 %}{% break %}{% endif %}{{ x }}{% endfor %} {% for i in range(2, 10, 3) %}{{ i }}{% endfor %} {{ range(5, 0, -2) | list }}",
    "{% for a in [1, 2] %}{% for b in 'xy' %}{{ a }}{{ b }}{{ loop.index }} {% endfor %}{{ loop.index }}|{% endfor %}",
    "{% set x = 1 %}{% for i in l %}{% set x = x + i %}{{ x }}{% endfor %}={{ x }} {% set ns = namespace(t=0) %}{% for i in l %}{% set ns.t = ns.t + i %}{% endfor %}{{ ns.t }}",
    "{% set a, b = 1, 2 %}{{ a }}{{ b }} {% set t = (3, 4) %}{% set c, d = t %}{{ c }}{{ d }} {% set x %}block {{ n }}{% endset %}[{{ x }}] {% set y | upper %}up{% endset %}{{ y }}",
    "{% if n > 10 %}big{% elif n > 5 %}mid{% else %}small{% endif %} {% if none %}x{% elif '' %}y{% else %}z{% endif %} {% if undefined_var %}u{% endif %}",
    "{% macro greet(name, greeting='Hello', punct='!') %}{{ greeting }}, {{ name }}{{ punct }}{% endmacro %}{{ greet('Ann') }} {{ greet('Bob', 'Hi') }} {{ greet(name='Cy', punct='?') }}",
    "{% macro m() %}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, k=3) }} {% macro r(n) %}{% if n > 0 %}{{ n }}{{ r(n - 1) }}{% endif %}{% endmacro %}{{ r(4) }}",
    "{% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}{% call wrap('b') %}inner {{ n }}{% endcall %} {% macro lst(items) %}{% for i in items %}{{ caller(i) }}{% endfor %}{% endmacro %}{% call(x) lst(l) %}[{{ x }}]{% endcall %}",
    "{% filter upper %}shout {{ s }}{% endfilter %} {% filter replace('a', 'o') | title %}banana split{% endfilter %}",
    "{% with a = 1, b = n %}{{ a + b }}{% endwith %}{{ a }}| {% raw %}{{ not rendered }} {% if %}{% endraw %}",
    "{% set d2 = dict(a=1, b='x') %}{{ d2 }} {{ dict(d, z=0) }} {% set ns = namespace(d, extra=1) %}{{ ns.a }}{{ ns.extra }} {{ namespace(a=1).a }}",
    "{{ strftime_now('%Y-%m-%d %H:%M:%S %A %B %j') }} {{ strftime_now('%d %b %Y') }}",
    # whitespace control
    "a\n  {% if true %}\n    b\n  {% endif %}\nc\n  {{ 'd' }}\n  {# comment #}\ne",
    "x  {%- if true -%}  y  {%- endif -%}  z {{- ' w ' -}} v\n{#- c -#}\n u {%+ if true %}k{% endif %}",
    "line\n    {%- for i in l %}\n  - {{ i }}\n    {%- endfor %}\nend\n",
    "{% for i in l %}\n{{ i }}\n{% endfor %}\n{%- if true %}\n\tT\n{% endif %}\r\nwin\r\n{# multi\nline #}\n  tail  \n\n",
    "  {% raw %}  raw {{ x }}  {% endraw %}  |{% set v = 1 %}  \n  after",
    # errors Jinja raises too
    "{{ 1 + 'a' }}", "{{ undefined_var.x }}", "{{ l.append(4) }}", "{{ raise_exception('custom ' ~ n) }}", "{{ 1 / 0 }}",
    "{{ 'a' < 1 }}", "{% for x in 5 %}{% endfor %}", "{{ [1, 'a'] | sort }}", "{{ d | tojson(sort_keys=true) }}{{ {1: 2, 'a': 3} | tojson(sort_keys=true) }}",
    "{{ 'x' | nosuchfilter }}", "{{ x is nosuchtest }}", "{% for %}", "{{ range(1, 2, 0) }}", "{{ undefined_var + 1 }}", "{{ 'abc'.split('') }}",
    "{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}", "{{ none.x.y }}", "{{ {'a': 1}.pop('a') }}",
]


def cases():
    return [(src, V) for src in SNIPPETS]
