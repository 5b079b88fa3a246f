"""Parsing: YAML 1.2 core scalars, line bookkeeping, and refusals of hostile input."""

from __future__ import annotations

import time

from reconciler.load.yamlio import (
    MAX_ALIAS_NODES,
    MAX_YAML_BYTES,
    YamlMap,
    YamlSeq,
    parse_yaml,
)

BILLION_LAUGHS = b"""\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def test_billion_laughs_is_refused_fast() -> None:
    start = time.perf_counter()
    parsed = parse_yaml(BILLION_LAUGHS)
    elapsed = time.perf_counter() - start
    assert parsed.documents == ()
    assert len(parsed.errors) == 1
    assert "alias bomb" in parsed.errors[0][1]
    assert elapsed < 0.5


def test_modest_aliases_are_expanded_as_copies() -> None:
    parsed = parse_yaml(b"base: &b {cpu: 1}\nx: *b\ny: *b\n")
    value = parsed.documents[0].value
    assert value["x"] == value["y"] == {"cpu": 1}
    assert value["x"] is not value["y"]
    assert MAX_ALIAS_NODES >= 1000


def test_scalars_follow_yaml_1_2_core() -> None:
    text = (b"a: yes\nb: on\nc: 2024-01-01\nd: 0644\ne: 0o17\nf: 0x1F\ng: 1.5\nh: ~\n"
            b"i: true\nj: '12'\nk: !!str 5\nl: .inf\nm: -3\nn: 1e3\no:\n")
    value = parse_yaml(text).documents[0].value
    assert value == {"a": "yes", "b": "on", "c": "2024-01-01", "d": 644, "e": 15, "f": 31,
                     "g": 1.5, "h": None, "i": True, "j": "12", "k": "5",
                     "l": float("inf"), "m": -3, "n": 1000.0, "o": None}


def test_keys_are_strings_and_lines_are_recorded() -> None:
    text = b"# comment\nfirst: 1\n80: http\nlist:\n  - a\n  -\n    b: 2\n"
    doc = parse_yaml(text).documents[0]
    value = doc.value
    assert isinstance(value, YamlMap)
    assert doc.line == 2
    assert list(value) == ["first", "80", "list"]
    assert value.line_of("80") == 3
    items = value["list"]
    assert isinstance(items, YamlSeq)
    assert [items.line_of(0), items.line_of(1)] == [5, 7]
    assert items[1].line_of("b") == 7


def test_several_documents_and_empty_ones() -> None:
    parsed = parse_yaml(b"---\na: 1\n---\n# nothing\n---\nb: 2\n")
    assert [d.value for d in parsed.documents] == [{"a": 1}, {"b": 2}]
    assert [d.line for d in parsed.documents] == [2, 6]


def test_oversized_input_is_refused_without_parsing() -> None:
    data = b"a: [" + b"1," * (MAX_YAML_BYTES // 2) + b"]\n"
    start = time.perf_counter()
    parsed = parse_yaml(data)
    assert time.perf_counter() - start < 0.1
    assert parsed.errors == ((1, f"YAML file larger than {MAX_YAML_BYTES} bytes"),)


def test_invalid_utf8_names_its_line() -> None:
    parsed = parse_yaml(b"a: 1\nb: \xff\xfe\n")
    assert parsed.errors == ((2, "file is not valid UTF-8"),)


def test_deep_nesting_is_refused() -> None:
    parsed = parse_yaml(b"[" * 200 + b"]" * 200)
    assert parsed.errors and "nesting deeper" in parsed.errors[0][1]


def test_explicit_tags_are_checked() -> None:
    assert parse_yaml(b"a: !!int 12\n").documents[0].value == {"a": 12}
    assert parse_yaml(b"a: !!int twelve\n").errors == ((1, "'twelve' is not a valid int"),)


def test_octal_and_hex_integers_keep_their_text_through_copies() -> None:
    import copy
    import pickle

    from reconciler.load.yamlio import IntText, shown

    value = parse_yaml(b"mode: 0o644\nmask: 0x1F\nplain: 644\n").documents[0].value
    assert value == {"mode": 420, "mask": 31, "plain": 644}
    for again in (copy.deepcopy(value), pickle.loads(pickle.dumps(value))):
        assert isinstance(again["mode"], IntText) and again["mode"].text == "0o644"
    assert type(value["plain"]) is int
    assert shown(value["mask"]) == "'0x1F'" and len(shown("x" * 10_000)) == 60


def test_line_numbers_count_crlf_and_lone_cr_once() -> None:
    assert parse_yaml(b"a: 1\r\nb: 2\rc: \xff\n").errors == ((3, "file is not valid UTF-8"),)
    parsed = parse_yaml(b"a: 1\r\rb: \x07\n")
    assert parsed.errors == ((3, "YAML error: control characters are not allowed "
                                 "(character #x0007)"),)
