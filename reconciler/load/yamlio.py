"""Safe, fast YAML parsing that remembers the line of every key and item.

Why this parser: measured on the 1.9 MB synthetic repo of `bench/gen_state.py`
(2,500 files, 10,000 resources), ruamel.yaml's pure-Python safe loader takes
5.6 s and its round-trip loader 7.9 s. ruamel.yaml.clib's C parser is as
fast, but it bundles an older libyaml that rejects `hosts: [web-1:22]` (a
colon inside a plain scalar of a flow sequence), which the state-repo format
itself uses. ruamel.yaml stays the parser of the daemon's own config file.
libyaml's C composer, reached through PyYAML's `yaml._yaml.CParser`, builds
the node graph of the same files in 0.14 s once its Python resolver callback is
replaced by a constant one. So we compose with libyaml (falling back to
PyYAML's pure-Python composer when libyaml is missing), and construct values
ourselves from the nodes, which carry their start marks: every mapping and
sequence we build records the line of each key and item, at no extra parse.

Invariants:
- Scalars resolve by the YAML 1.2 core schema (as ruamel.yaml does): `yes`,
  `on` and `2024-01-01` stay strings; `0644` is the integer 644; `0o644` and
  `0x1F` are integers that keep their source text (`IntText`). Mapping keys
  are always strings (their source text), as in JSON and Kubernetes.
- Every problem names the line it is on, counting CR LF and a lone CR as one
  break, and quotes user values through `shown()`, cut to a short length.
- Nothing is lost silently: duplicate keys, merge keys (`<<`), unknown tags,
  recursive aliases and syntax errors are problems with a line.
- Alias bombs are refused while constructing: a document whose aliases would
  add more than MAX_ALIAS_NODES nodes, or that nests deeper than MAX_DEPTH, is
  an error, so a billion-laughs document costs milliseconds, not gigabytes.
- Parsing is pure and path-free (problems hold lines only), so a parsed blob is
  cached once and shared by every path with the same content.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import yaml
import yaml.nodes as ynodes

MAX_YAML_BYTES = 1024 * 1024
MAX_ALIAS_NODES = 10_000
MAX_DEPTH = 64

_PLAIN = "!reconciler/plain"
_STR = "tag:yaml.org,2002:str"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"
_KNOWN_SCALAR_TAGS = {
    _STR, "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null",
}


class YamlMap(dict[str, Any]):
    """A mapping that knows its own line and the line of each key."""

    __slots__ = ("key_lines", "line")

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.key_lines: dict[str, int] = {}

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


class YamlSeq(list[Any]):
    """A sequence that knows its own line and the line of each item."""

    __slots__ = ("item_lines", "line")

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.item_lines: list[int] = []

    def line_of(self, index: int) -> int:
        return self.item_lines[index] if 0 <= index < len(self.item_lines) else self.line


def from_plain(value: Any, line: int = 0) -> Any:
    """Plain dicts and lists (a Target built in code) as YamlMap and YamlSeq,
    every key and item on `line`, so the loader's schemas can check them."""
    if isinstance(value, YamlMap | YamlSeq):
        return value
    if isinstance(value, dict):
        mapping = YamlMap(line)
        for key, item in value.items():
            mapping[str(key)] = from_plain(item, line)
            mapping.key_lines[str(key)] = line
        return mapping
    if isinstance(value, list | tuple):
        seq = YamlSeq(line)
        seq.extend(from_plain(item, line) for item in value)
        seq.item_lines = [line] * len(seq)
        return seq
    return value


@dataclass(frozen=True, kw_only=True)
class Document:
    value: Any
    line: int
    """1-based line where the document's content starts."""


@dataclass(frozen=True, kw_only=True)
class ParsedYaml:
    documents: tuple[Document, ...] = ()
    errors: tuple[tuple[int, str], ...] = ()
    """(line, message) pairs; a file with errors contributes no documents."""


class _PlainResolver:
    """Defers scalar resolution to `_scalar`; the stock resolver's regex pass
    from C into Python costs five times the parse itself."""

    def resolve(self, kind: type, value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is ynodes.ScalarNode:
            return _PLAIN if implicit[0] else _STR
        return _SEQ if kind is ynodes.SequenceNode else _MAP

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        return None

    def ascend_resolver(self) -> None:
        return None


_CParser: Any = getattr(getattr(yaml, "_yaml", None), "CParser", None)
if _CParser is not None:

    class _Composer(_PlainResolver, _CParser):  # type: ignore[misc]
        pass

else:  # pragma: no cover - libyaml is present wherever PyYAML ships wheels

    class _Composer(  # type: ignore[no-redef]
        _PlainResolver, yaml.reader.Reader, yaml.scanner.Scanner,
        yaml.parser.Parser, yaml.composer.Composer,
    ):
        def __init__(self, stream: bytes) -> None:
            yaml.reader.Reader.__init__(self, stream)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)
            yaml.composer.Composer.__init__(self)


class _Refused(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


_INT = re.compile(r"[-+]?[0-9]+")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_SPECIAL: dict[str, Any] = {
    "": None, "~": None, "null": None, "Null": None, "NULL": None,
    "true": True, "True": True, "TRUE": True,
    "false": False, "False": False, "FALSE": False,
    ".inf": math.inf, ".Inf": math.inf, ".INF": math.inf, "+.inf": math.inf,
    "-.inf": -math.inf, "-.Inf": -math.inf, "-.INF": -math.inf,
    ".nan": math.nan, ".NaN": math.nan, ".NAN": math.nan,
}


MAX_INT_DIGITS = 1000
"""Longer decimal integers are refused: Python will not convert more than
4300 digits, and no value of the format needs more than a few."""


SHOWN_CHARS = 60


def shown(value: Any) -> str:
    """How a user's value appears in a problem: its repr, cut to SHOWN_CHARS, so
    one pasted blob cannot turn a one-line message (or a commit status) into
    megabytes. An integer written in octal or hex is shown as written."""
    text = repr(value.text if isinstance(value, IntText) else value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 4] + "..." + text[-1]


class IntText(int):
    """An integer written as `0o...` or `0x...`, which keeps its source text:
    a file mode `0o644` is the number 420, whose decimal digits are not a mode."""

    text: str

    def __new__(cls, value: int, text: str) -> IntText:
        obj = super().__new__(cls, value)
        obj.text = text
        return obj

    def __getnewargs__(self) -> tuple[int, str]:  # type: ignore[override]
        # Bodies are deep-copied and pickled downstream: rebuild with the text.
        return int(self), self.text


def resolve_plain(text: str) -> Any:
    """A plain scalar's value under the YAML 1.2 core schema. Raises ValueError
    for a decimal integer of more than MAX_INT_DIGITS digits."""
    if text[:1] not in "-+.0123456789~nNtTfF" or text in ("-", "+", "."):
        return text if text else None
    if text in _SPECIAL:
        return _SPECIAL[text]
    if _INT.fullmatch(text):
        if len(text) > MAX_INT_DIGITS:
            raise ValueError(f"an integer of {len(text)} digits is too large")
        return int(text)
    if text.startswith("0o") and re.fullmatch(r"0o[0-7]+", text):
        return IntText(int(text[2:], 8), text)
    if text.startswith("0x") and re.fullmatch(r"0x[0-9a-fA-F]+", text):
        return IntText(int(text[2:], 16), text)
    if _FLOAT.fullmatch(text):
        return float(text)
    return text


def _explicit_scalar(node: Any, line: int) -> Any:
    tag, text = node.tag, node.value
    if tag == _STR:
        return text
    if tag not in _KNOWN_SCALAR_TAGS:
        raise _Refused(line, f"unsupported YAML tag {shown(tag)}")
    value = resolve_plain(text)
    wanted: Any = {"tag:yaml.org,2002:int": int, "tag:yaml.org,2002:float": (int, float),
              "tag:yaml.org,2002:bool": bool, "tag:yaml.org,2002:null": type(None)}[tag]
    if not isinstance(value, wanted) or (tag.endswith("int") and isinstance(value, bool)):
        raise _Refused(line, f"{shown(text)} is not a valid {tag.rsplit(':', 1)[-1]}")
    return float(value) if tag.endswith("float") else value


class _Builder:
    """Turns one composed document into YamlMap/YamlSeq/scalars, guarding aliases."""

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.built = 0
        self.active: set[int] = set()

    def build(self, node: Any, depth: int) -> Any:
        line = node.start_mark.line + 1
        if depth > MAX_DEPTH:
            raise _Refused(line, f"nesting deeper than {MAX_DEPTH} levels")
        key = id(node)
        self.built += 1
        self.seen.add(key)
        if self.built - len(self.seen) > MAX_ALIAS_NODES:
            raise _Refused(line, "aliases expand to too many nodes (possible alias bomb)")
        if isinstance(node, ynodes.ScalarNode):
            try:
                if node.tag == _PLAIN:
                    return resolve_plain(node.value)
                return _explicit_scalar(node, line)
            except ValueError as exc:
                raise _Refused(line, str(exc)) from None
        if key in self.active:
            raise _Refused(line, "recursive alias")
        self.active.add(key)
        try:
            if isinstance(node, ynodes.SequenceNode):
                return self._sequence(node, line, depth)
            return self._mapping(node, line, depth)
        finally:
            self.active.discard(key)

    def _sequence(self, node: Any, line: int, depth: int) -> YamlSeq:
        if node.tag != _SEQ:
            raise _Refused(line, f"unsupported YAML tag {shown(node.tag)}")
        out = YamlSeq(line)
        for item in node.value:
            out.item_lines.append(item.start_mark.line + 1)
            out.append(self.build(item, depth + 1))
        return out

    def _mapping(self, node: Any, line: int, depth: int) -> YamlMap:
        if node.tag != _MAP:
            raise _Refused(line, f"unsupported YAML tag {shown(node.tag)}")
        out = YamlMap(line)
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if not isinstance(key_node, ynodes.ScalarNode):
                raise _Refused(key_line, "mapping keys must be plain strings")
            name = key_node.value
            if name == "<<" and key_node.tag == _PLAIN:
                raise _Refused(key_line, "merge keys (<<) are not supported; write the keys out")
            if name in out.key_lines:
                raise _Refused(key_line, f"duplicate key {shown(name)} (first at line "
                                         f"{out.key_lines[name]})")
            out.key_lines[name] = key_line
            out[name] = self.build(value_node, depth + 1)
        return out


def parse_yaml(data: bytes) -> ParsedYaml:
    """Parse every document of one file; errors come back as (line, message)."""
    if len(data) > MAX_YAML_BYTES:
        return ParsedYaml(errors=((1, f"YAML file larger than {MAX_YAML_BYTES} bytes"),))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return ParsedYaml(errors=((_line_at(data, exc.start), "file is not valid UTF-8"),))
    documents: list[Document] = []
    composer = _Composer(data)
    try:
        while composer.check_node():
            node = composer.get_node()
            value = _Builder().build(node, 0)
            if value is not None:
                documents.append(Document(value=value, line=node.start_mark.line + 1))
    except _Refused as exc:
        return ParsedYaml(errors=((exc.line, exc.message),))
    except yaml.MarkedYAMLError as exc:
        return ParsedYaml(errors=(_syntax_error(exc, text),))
    except yaml.reader.ReaderError as exc:
        # No mark: libyaml gives the byte offset (the pure-Python reader, the
        # character index, which is the same for the ASCII of most files).
        return ParsedYaml(errors=((_line_at(data, exc.position), f"YAML error: {exc.reason} "
                                   f"(character {_char(exc.character)})"),))
    except yaml.YAMLError as exc:
        return ParsedYaml(errors=((1, f"YAML error: {exc}"),))
    finally:
        composer.dispose()
    return ParsedYaml(documents=tuple(documents))


def _line_at(data: bytes, offset: int) -> int:
    """The 1-based line of a byte offset, counting CR LF, LF and a lone CR as
    one line break each, as YAML (and so every mark libyaml gives) does."""
    head = data[:offset]
    return head.count(b"\n") + head.count(b"\r") - head.count(b"\r\n") + 1


def _char(value: Any) -> str:
    code = value if isinstance(value, int) else ord(value) if isinstance(value, str) else -1
    return f"#x{code:04x}" if code >= 0 else repr(value)


def _syntax_error(exc: yaml.MarkedYAMLError, text: str) -> tuple[int, str]:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else 1
    message = "YAML syntax error: " + " ".join(
        str(part) for part in (exc.context, exc.problem) if part)
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if mark is not None and line <= len(lines) and "\t" in lines[line - 1][: mark.column + 1]:
        message += " (a tab: YAML indents with spaces only)"
    return line, message
