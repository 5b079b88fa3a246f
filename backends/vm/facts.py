"""Batched fact collection: one shell command per host, one pure parser.

Like a pyinfra fact, a fact here is a command plus a pure `process(output)`:
`fact_script` writes ONE POSIX sh script that reports every managed path
(type, mode, owner, group, sha256 of regular files, symlink target), every
service's status and every command guard; `parse_facts` turns its output into
values. Neither does I/O, so both are tested without a host.

The script forks little: one `stat` for all paths, one `sha256sum` for all
regular files, one `readlink` per existing symlink; the type tests are shell
builtins. Output is line based (paths with newlines are refused earlier):

    #stat                     then `stat -c '%f %U %G %n'` lines (raw hex mode)
    #sha                      then `sha256sum` lines ("\\" prefix: escaped name)
    #rec                      then the records below
    L <index> <target>        symlink target of paths[index]
    S <index> <exit|none>     service status exit code; none: no systemctl
    G <index> <exit>          command guard exit code (0: already done)
    #end                      written last: its absence means the output is cut
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
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


@dataclass(frozen=True, kw_only=True)
class FactRequest:
    paths: tuple[str, ...] = ()
    services: tuple[ServiceQuery, ...] = ()
    guards: tuple[GuardQuery, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    """Exported before status and guard commands run."""


@dataclass(frozen=True, kw_only=True)
class PathFact:
    type: str
    """file, directory, symlink or other."""
    mode: str
    owner: str
    group: str
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
    run = f"{_quiet(query.unless)}; r=$?" if query.unless else "r=1"
    if query.creates:
        run = f"if [ -e {shlex.quote(query.creates)} ]; then r=0; else {run}; fi"
    return f"{run}; printf 'G {index} %s\\n' \"$r\""


def fact_script(request: FactRequest) -> str:
    """The one command that collects every fact of `request` on a host."""
    lines = env_prelude(request.env)
    quoted = [shlex.quote(p) for p in request.paths]
    lines.append("echo '#stat'")
    if quoted:
        lines.append(f"stat -c '%f %U %G %n' -- {' '.join(quoted)} 2>/dev/null")
        lines.append("set --")
        lines.append(
            f"for f in {' '.join(quoted)}; do "
            'if [ -f "$f" ] && [ ! -L "$f" ]; then set -- "$@" "$f"; fi; done'
        )
    lines.append("echo '#sha'")
    if quoted:
        lines.append('if [ $# -gt 0 ]; then sha256sum -- "$@" 2>/dev/null; fi')
    lines.append("echo '#rec'")
    for index, path in enumerate(quoted):
        lines.append(f"if [ -L {path} ]; then printf 'L {index} '; readlink -- {path}; fi")
    lines.extend(_service_line(i, q) for i, q in enumerate(request.services))
    lines.extend(_guard_line(i, q) for i, q in enumerate(request.guards))
    lines.append("echo '#end'")
    return "\n".join(lines) + "\n"


def _parse_stat(line: str) -> tuple[str, PathFact] | None:
    parts = line.split(" ", 3)
    if len(parts) != 4:
        return None
    try:
        raw = int(parts[0], 16)
    except ValueError:
        return None
    kind = _TYPES.get(raw & 0o170000, "other")
    fact = PathFact(type=kind, mode=f"{raw & 0o7777:04o}", owner=parts[1], group=parts[2])
    return parts[3], fact


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


def _parse_record(line: str, into: dict[str, dict[int, str]]) -> None:
    tag, _, rest = line.partition(" ")
    index_text, _, value = rest.partition(" ")
    if tag in ("L", "S", "G") and index_text.isdigit():
        into[tag][int(index_text)] = value


def parse_facts(output: str, request: FactRequest) -> Facts:
    """Turn the output of `fact_script(request)` into Facts. Pure; unknown lines
    are ignored, so stray output cannot corrupt what is known."""
    stats: dict[str, PathFact] = {}
    hashes: dict[str, str] = {}
    records: dict[str, dict[int, str]] = {"L": {}, "S": {}, "G": {}}
    section, complete = "", False
    for line in output.split("\n"):
        if line in ("#stat", "#sha", "#rec"):
            section = line
        elif line == "#end":
            complete = True
        elif section == "#stat" and (st := _parse_stat(line)) is not None:
            stats[st[0]] = st[1]
        elif section == "#sha" and (sh := _parse_sha(line)) is not None:
            hashes[sh[0]] = sh[1]
        elif section == "#rec":
            _parse_record(line, records)
    links = {request.paths[i]: t for i, t in records["L"].items() if i < len(request.paths)}
    paths = {
        path: PathFact(
            type=fact.type, mode=fact.mode, owner=fact.owner, group=fact.group,
            sha256=hashes.get(path) if fact.type == "file" else None,
            target=links.get(path) if fact.type == "symlink" else None,
        )
        for path, fact in stats.items()
    }
    services = {
        i: (None if v == "none" else int(v) if v.lstrip("-").isdigit() else 255)
        for i, v in records["S"].items()
    }
    guards = {i: v == "0" for i, v in records["G"].items()}
    return Facts(paths=paths, services=services, guards=guards, complete=complete)


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
