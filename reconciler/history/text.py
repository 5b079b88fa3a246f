"""Text the history can always store and every reader can always print.

Why: names come from git trees, and a tree entry name is bytes. The loader
keeps a byte that is not UTF-8 as a lone surrogate (`apps/w\\udcffeb`), which
neither SQLite nor PostgreSQL can encode, and PostgreSQL refuses NUL in text.
A message that cannot be stored must not stop a deploy from ending, so every
string is made safe on its way in: an undecodable byte reads `\\xff`, a NUL
`\\x00`, the rest is kept as it is. Pure functions, no I/O.
"""

from __future__ import annotations

import json
from typing import Any


def safe_text(text: str) -> str:
    """`text` with undecodable bytes and NUL spelled as escapes; unchanged when clean."""
    if "\x00" not in text:
        try:
            text.encode("utf-8")
            return text
        except UnicodeEncodeError:
            pass
    return "".join(_safe_char(c) for c in text)


def _safe_char(char: str) -> str:
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:
        # surrogateescape's spelling of the raw byte code - 0xDC00.
        return f"\\x{code - 0xDC00:02x}"
    if 0xD800 <= code <= 0xDFFF:
        return f"\\u{code:04x}"
    if code == 0:
        return "\\x00"
    return char


def safe_value(value: Any) -> Any:
    """`value` with every string in it made safe (lists, tuples and dicts walked)."""
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, list | tuple):
        return [safe_value(v) for v in value]
    if isinstance(value, dict):
        return {safe_text(str(k)): safe_value(v) for k, v in value.items()}
    return value


def safe_json(value: Any) -> str:
    """JSON for a text column: safe strings, sorted keys."""
    return json.dumps(safe_value(value), sort_keys=True)
