"""Batched fact collection: one shell command per host, one pure parser.

Like a pyinfra fact, a fact here is a command plus a pure `process(output)`:
`fact_script` writes ONE POSIX sh script that reports every managed path
(type, mode, owner, group, sha256 of regular files, symlink target), every
service's status and every command guard; `parse_facts` turns its output into
values. Neither does I/O, so both are tested without a host.

The script forks little: one `stat` and one `sha256sum` per chunk of paths
(CHUNK paths, at most CHUNK_BYTES of names: no command line comes near the
kernel's limits, and the shell's list of regular files stays short, since
growing "$@" one file at a time costs time quadratic in its length), one
`realpath` per chunk of paths that must stay inside the root, one `readlink`
per existing symlink, one `cat` per service record asked for; the type tests,
directory entry counts and command records are shell builtins. The script
travels on stdin (see transport.py), so its own size has no limit. Output is
line based (paths with newlines are refused earlier):

    #stat                     then `stat -c '%f %s %U %G %n'` lines (raw hex mode)
    #sha                      then `sha256sum` lines ("\\" prefix: escaped name)
    #real                     then, per chunk of the root and the contained paths:
    #part <first>             the index of its first path, then `realpath -m` of
                              each path of the chunk, one line each; or, when
                              that call failed,
    #each                     then R <index> <resolved|?> per path of the chunk
    #rec                      then the records below
    L <index> <target>        symlink target of paths[index]
    S <index> <exit|none>     service status exit code; none: no systemctl
    G <index> <exit>          command guard exit code (0: already done)
    H <index> <sha256>        recorded run hash of an unguarded command
    E <index> <count>         entries in directory counted[index]
    J <index> <json>          service record records[index]
    #end                      written last: its absence means the output is cut

`#real` has absolute paths only, so a file name can never pass for a marker.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

_TYPES = {0o100000: "file", 0o040000: "directory", 0o120000: "symlink"}


@dataclass(frozen=True, kw_only=True)
class ServiceQuery:
    unit: str = ""
    """A systemd unit: status is `systemctl is-active`."""
    status: str = ""
    """Otherwise a shell command: running when it exits 0."""


@dataclass(frozen=True, kw_only=True)
class GuardQuery:
    unless: str = ""
    creates: str = ""
    """An absolute path, already under the host's root."""
    record: str = ""
    """Without unless/creates: the file holding the hash of the last run."""


@dataclass(frozen=True, kw_only=True)
class FactRequest:
    paths: tuple[str, ...] = ()
    services: tuple[ServiceQuery, ...] = ()
    guards: tuple[GuardQuery, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    """Exported before status and guard commands run."""
    root: str = "/"
    contained: tuple[str, ...] = ()
    """Paths whose real location (symlinks resolved) must stay inside `root`."""
    counted: tuple[str, ...] = ()
    """Directories whose entries are counted (to tell whether a delete empties them)."""
    records: tuple[str, ...] = ()
    """Service record files to read."""


@dataclass(frozen=True, kw_only=True)
class PathFact:
    type: str
    """file, directory, symlink or other."""
    mode: str
    owner: str
    group: str
    size: int = 0
    sha256: str | None = None
    target: str | None = None


@dataclass(frozen=True, kw_only=True)
class Facts:
    paths: Mapping[str, PathFact]
    """Only paths that exist."""
    services: Mapping[int, int | None]
    """Status exit code per service index; None when systemctl is missing."""
    guards: Mapping[int, bool]
    """True when the command's guard says it is already done."""
    complete: bool
    resolved: Mapping[str, str | None] = field(default_factory=dict)
    """Each contained path (and the root) with symlinks resolved; None: unknown."""
    run_hashes: Mapping[int, str] = field(default_factory=dict)
    """Recorded run hash per guard index (unguarded commands that ran)."""
    entries: Mapping[str, int] = field(default_factory=dict)
    """Entry count of each counted directory that exists."""
    records: Mapping[int, str] = field(default_factory=dict)
    """Text of each service record that exists."""


def env_prelude(env: Mapping[str, str]) -> list[str]:
    lines = ["LC_ALL=C; export LC_ALL"]
    for key, value in sorted(env.items()):
        lines.append(f"{key}={shlex.quote(value)}; export {key}")
    return lines


def _quiet(command: str) -> str:
    # A subshell with no stdin and no output: a status command cannot read the
    # script, hold our pipes open, or print into the protocol.
    return f"( {command}\n) </dev/null >/dev/null 2>&1"


def _service_line(index: int, query: ServiceQuery) -> str:
    if query.unit:
        unit = shlex.quote(query.unit)
        return (
            "if command -v systemctl >/dev/null 2>&1; then "
            f"systemctl is-active --quiet {unit}; printf 'S {index} %s\\n' \"$?\"; "
            f"else printf 'S {index} none\\n'; fi"
        )
    return f"{_quiet(query.status)}; printf 'S {index} %s\\n' \"$?\""


def _guard_line(index: int, query: GuardQuery) -> str:
    if not (query.unless or query.creates):
        # `read` is a builtin: an unguarded command costs no fork on a no-op.
        record = shlex.quote(query.record)
        return (f"h=; if [ -f {record} ] && {{ read -r h || [ -n \"$h\" ]; }} < {record}; "
                f"then printf 'H {index} %s\\n' \"$h\"; fi")
    run = f"{_quiet(query.unless)}; r=$?" if query.unless else "r=1"
    if query.creates:
        run = f"if [ -e {shlex.quote(query.creates)} ]; then r=0; else {run}; fi"
    return f"{run}; printf 'G {index} %s\\n' \"$r\""


def _count_line(index: int, directory: str) -> str:
    # Globs are builtins; the three patterns together match every entry,
    # dot files included, and `-e || -L` drops patterns that matched nothing.
    d = shlex.quote(directory)
    return (f"if [ -d {d} ] && [ ! -L {d} ]; then n=0; "
            f"for e in {d}/* {d}/.[!.]* {d}/..?*; do "
            'if [ -e "$e" ] || [ -L "$e" ]; then n=$((n+1)); fi; done; '
            f"printf 'E {index} %s\\n' \"$n\"; fi")


CHUNK = 256
CHUNK_BYTES = 32 * 1024


def chunks(words: Sequence[str]) -> list[tuple[int, int]]:
    """(first index, count) of consecutive runs of `words`, each at most CHUNK
    words and CHUNK_BYTES of text (a longer word goes alone). Pure, so the
    parser finds the same runs as the script."""
    out: list[tuple[int, int]] = []
    first, size = 0, 0
    for index, word in enumerate(words):
        if index > first and (index - first >= CHUNK or size + len(word) + 1 > CHUNK_BYTES):
            out.append((first, index - first))
            first, size = index, 0
        size += len(word) + 1
    if len(words) > first:
        out.append((first, len(words) - first))
    return out


def _real_lines(request: FactRequest) -> list[str]:
    if not request.contained:
        return []
    asked = [shlex.quote(p) for p in (request.root, *request.contained)]
    lines = ["echo '#real'"]
    for first, count in chunks(asked):
        quoted = " ".join(asked[first:first + count])
        lines.append(
            f"echo '#part {first}'; realpath -m -- {quoted} 2>/dev/null || "
            f"{{ echo '#each'; i={first}; for p in {quoted}; do printf 'R %s ' \"$i\"; "
            "realpath -m -- \"$p\" 2>/dev/null || echo '?'; i=$((i+1)); done; }"
        )
    return lines


def _path_lines(quoted: Sequence[str]) -> list[str]:
    runs = [" ".join(quoted[first:first + count]) for first, count in chunks(quoted)]
    lines = ["echo '#stat'"]
    lines.extend(f"stat -c '%f %s %U %G %n' -- {run} 2>/dev/null" for run in runs)
    lines.append("echo '#sha'")
    for run in runs:
        # Regular files only: sha256sum would follow a link, or block on a fifo.
        lines.append(
            f"set --; for f in {run}; do "
            'if [ -f "$f" ] && [ ! -L "$f" ]; then set -- "$@" "$f"; fi; done; '
            'if [ $# -gt 0 ]; then sha256sum -- "$@" 2>/dev/null; fi'
        )
    return lines


def fact_script(request: FactRequest) -> str:
    """The one command that collects every fact of `request` on a host."""
    lines = env_prelude(request.env)
    quoted = [shlex.quote(p) for p in request.paths]
    lines.extend(_path_lines(quoted))
    lines.extend(_real_lines(request))
    lines.append("echo '#rec'")
    for index, path in enumerate(quoted):
        lines.append(f"if [ -L {path} ]; then printf 'L {index} '; readlink -- {path}; fi")
    lines.extend(_service_line(i, q) for i, q in enumerate(request.services))
    lines.extend(_guard_line(i, q) for i, q in enumerate(request.guards))
    lines.extend(_count_line(i, d) for i, d in enumerate(request.counted))
    for index, record in enumerate(request.records):
        r = shlex.quote(record)
        lines.append(f"if [ -f {r} ]; then printf 'J {index} %s\\n' \"$(cat -- {r})\"; fi")
    lines.append("echo '#end'")
    return "\n".join(lines) + "\n"


def _parse_stat(line: str) -> tuple[str, PathFact] | None:
    parts = line.split(" ", 4)
    if len(parts) != 5 or not parts[1].isdigit():
        return None
    try:
        raw = int(parts[0], 16)
    except ValueError:
        return None
    kind = _TYPES.get(raw & 0o170000, "other")
    fact = PathFact(type=kind, mode=f"{raw & 0o7777:04o}", owner=parts[2], group=parts[3],
                    size=int(parts[1]))
    return parts[4], fact


def _unescape(name: str) -> str:
    # sha256sum escapes "\\" and newline in names and marks the line with "\\".
    out, i = [], 0
    while i < len(name):
        if name[i] == "\\" and i + 1 < len(name):
            out.append("\n" if name[i + 1] == "n" else name[i + 1])
            i += 2
        else:
            out.append(name[i])
            i += 1
    return "".join(out)


def _parse_sha(line: str) -> tuple[str, str] | None:
    escaped = line.startswith("\\")
    body = line[1:] if escaped else line
    digest, sep, name = body.partition("  ")
    if not sep or len(digest) != 64:
        return None
    return (_unescape(name) if escaped else name), digest


_TAGS = ("L", "S", "G", "H", "E", "J", "R")


def _parse_record(line: str, into: dict[str, dict[int, str]]) -> None:
    tag, _, rest = line.partition(" ")
    index_text, _, value = rest.partition(" ")
    if tag in _TAGS and index_text.isdigit():
        into[tag][int(index_text)] = value


@dataclass
class _Part:
    """The realpath output of one chunk: its lines, or its R records (`each`)."""

    lines: list[str] = field(default_factory=list)
    each: bool = False


def _resolved(request: FactRequest, parts: Mapping[int, _Part], each: Mapping[int, str]
              ) -> dict[str, str | None]:
    """Root and contained paths -> their real path; None where it is unknown
    (realpath failed, or its output does not line up with what was asked)."""
    asked = (request.root, *request.contained)
    out: dict[str, str | None] = {}
    for first, count in chunks([shlex.quote(p) for p in asked]):
        part = parts.get(first, _Part())
        chunk = asked[first:first + count]
        if part.each:
            values = [each.get(first + i, "?") for i in range(count)]
        elif len(part.lines) == count:
            values = part.lines
        else:
            values = ["?"] * count
        out.update((p, v if v.startswith("/") else None)
                   for p, v in zip(chunk, values, strict=True))
    return out


def parse_facts(output: str, request: FactRequest) -> Facts:
    """Turn the output of `fact_script(request)` into Facts. Pure; unknown lines
    are ignored, so stray output cannot corrupt what is known."""
    stats: dict[str, PathFact] = {}
    hashes: dict[str, str] = {}
    parts: dict[int, _Part] = {}
    part = _Part()
    records: dict[str, dict[int, str]] = {tag: {} for tag in _TAGS}
    section, complete = "", False
    for line in output.split("\n"):
        if line in ("#stat", "#sha", "#real", "#rec"):
            section = line
        elif line == "#end":
            complete = True
        elif section == "#stat" and (st := _parse_stat(line)) is not None:
            stats[st[0]] = st[1]
        elif section == "#sha" and (sh := _parse_sha(line)) is not None:
            hashes[sh[0]] = sh[1]
        elif section == "#real" and line.startswith("#part ") and line[6:].isdigit():
            part = parts.setdefault(int(line[6:]), _Part())
        elif section == "#real" and line == "#each":
            part.each = True
        elif section == "#real" and not part.each and line:
            part.lines.append(line)
        elif section in ("#rec", "#real"):
            _parse_record(line, records)
    links = {request.paths[i]: t for i, t in records["L"].items() if i < len(request.paths)}
    paths = {
        path: PathFact(
            type=fact.type, mode=fact.mode, owner=fact.owner, group=fact.group, size=fact.size,
            sha256=hashes.get(path) if fact.type == "file" else None,
            target=links.get(path) if fact.type == "symlink" else None,
        )
        for path, fact in stats.items()
    }
    services = {
        i: (None if v == "none" else int(v) if v.lstrip("-").isdigit() else 255)
        for i, v in records["S"].items()
    }
    return Facts(
        paths=paths, services=services, complete=complete,
        guards={i: v == "0" for i, v in records["G"].items()},
        resolved=_resolved(request, parts, records["R"]) if request.contained else {},
        run_hashes={i: v for i, v in records["H"].items() if len(v) == 64},
        entries={request.counted[i]: int(v) for i, v in records["E"].items()
                 if i < len(request.counted) and v.isdigit()},
        records={i: v for i, v in records["J"].items() if i < len(request.records)},
    )


def live_path_form(
    fact: PathFact | None, desired: Mapping[str, object] | None
) -> dict[str, str] | None:
    """The comparable form of what is at a path, keyed like `desired` so that
    unmanaged metadata (say, the owner when none is wanted) never shows as drift."""
    if fact is None:
        return None
    form = {"type": fact.type}
    if fact.type == "file" and fact.sha256 is not None:
        form["sha256"] = fact.sha256
    if fact.type == "symlink" and fact.target is not None:
        form["target"] = fact.target
    if fact.type != "symlink":
        wanted = desired or {}
        for key in ("mode", "owner", "group"):
            if key in wanted:
                form[key] = getattr(fact, key)
    return form
