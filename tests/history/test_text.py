"""safe_text: what the history stores for a string that is not storable text."""

from __future__ import annotations

import os

import pytest

from reconciler.history.text import safe_json, safe_text


@pytest.mark.parametrize(("given", "stored"), [
    ("apps/web/app.yaml", "apps/web/app.yaml"),
    ("café ✓", "café ✓"),  # text that is not ASCII stays as it is
    (os.fsdecode(b"apps/w\xffeb"), "apps/w\\xffeb"),  # a byte that is not UTF-8
    (os.fsdecode(b"\xc3"), "\\xc3"),  # half a character
    ("\ud800x", "\\ud800x"),  # a surrogate no decoder made
    ("a\x00b", "a\\x00b"),  # PostgreSQL's text refuses NUL
])
def test_strings_are_stored_as_text_every_store_takes(given: str, stored: str) -> None:
    assert safe_text(given) == stored
    safe_text(given).encode("utf-8")


def test_json_columns_escape_nested_strings_and_sort_keys() -> None:
    value = {"b": [os.fsdecode(b"h\xfe")], "a": {"x\x00": 1}}
    assert safe_json(value) == '{"a": {"x\\\\x00": 1}, "b": ["h\\\\xfe"]}'
