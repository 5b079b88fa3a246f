"""Which files of a state tree mean what, and which are not allowed at all.

The state root holds reconciler.yaml and apps/<app>/ folders; everything else
outside apps/ is ignored (a README, CI files). Inside apps/, nothing is
ignored silently that looks like state: YAML not in an app folder, YAML in an
app's subfolder, or an app folder without app.yaml is an error.

Invariants kept here, for the whole tree: no path with `.` or `..`
components, no submodule, no symlink whose target leaves the state root, and
no raw file over MAX_RAW_BYTES (YAML sizes are checked before reading). In-repo
symlinks are followed (for files and for folders on the way), at most
MAX_HOPS times.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from reconciler.errors import Problem
from reconciler.load.rendered import KUSTOMIZATION_FILES
from reconciler.load.vm import relative_parts
from reconciler.load.yamlio import shown
from reconciler.model import Location
from reconciler.tree import EntryKind, StateTree, TreeEntry

CONFIG_FILE = "reconciler.yaml"
MAX_RAW_BYTES = 10 * 1024 * 1024
MAX_HOPS = 16
_APP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_YAML = (".yaml", ".yml")


@dataclass(kw_only=True)
class AppFiles:
    name: str
    app_yaml: TreeEntry | None = None
    resources: list[TreeEntry] = field(default_factory=list)
    entries: list[TreeEntry] = field(default_factory=list)
    """Every state file of the folder (YAML and files/): its content identity."""
    first: str = ""
    """The first path seen in the folder, to point at when app.yaml is missing."""


@dataclass(kw_only=True)
class Layout:
    by_path: dict[str, TreeEntry] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    """Symlink path -> its target as stored."""
    bad_links: set[str] = field(default_factory=set)
    """Symlinks already reported as leaving the repository."""
    folders: set[str] = field(default_factory=set)
    """Every folder that holds an entry, so a path naming one is told so."""
    config: TreeEntry | None = None
    apps: dict[str, AppFiles] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def add(self, path: str, message: str, line: int = 1) -> None:
        self.problems.append(Problem(location=Location(file=path, line=line), message=message))

    def resolve(self, path: str) -> tuple[TreeEntry | None, str]:
        """The regular file that `path` names after following symlinks, or None
        and why not."""
        for _ in range(MAX_HOPS):
            parts = path.split("/")
            for i in range(1, len(parts) + 1):
                prefix = "/".join(parts[:i])
                if prefix in self.links:
                    joined = prefix.rpartition("/")[0] + "/" + self.links[prefix]
                    rest = parts[i:]
                    new = relative_parts("/".join([joined, *rest]))
                    if new is None or self.links[prefix].startswith("/"):
                        return None, f"{prefix} points outside the repository"
                    path = "/".join(new)
                    break
            else:
                entry = self.by_path.get(path)
                if entry is None and path in self.folders:
                    return None, f"{path} is a folder; name a file in it"
                if entry is None:
                    return None, f"{path} does not exist"
                if entry.kind is not EntryKind.FILE:
                    return None, f"{path} is not a regular file"
                return entry, ""
        return None, f"more than {MAX_HOPS} symlinks to follow"


def scan(tree: StateTree) -> Layout:
    layout = Layout()
    for entry in tree.entries():
        if _check_entry(layout, entry):
            layout.by_path[entry.path] = entry
            parts = entry.path.split("/")
            layout.folders.update("/".join(parts[:i]) for i in range(1, len(parts)))
            if entry.kind is EntryKind.SYMLINK:
                layout.links[entry.path] = tree.read(entry).decode("utf-8", "replace")
                _check_link(layout, entry.path)
    for entry in layout.by_path.values():
        _classify(layout, entry)
    for files in layout.apps.values():
        if files.app_yaml is None:
            layout.add(files.first, f"apps/{files.name}/ has state files but no app.yaml")
    _check_case(layout)
    return layout


def _check_case(layout: Layout) -> None:
    """Apps whose names differ only in case are one folder on a case-insensitive
    file system (macOS, Windows), where a checkout would silently merge them."""
    first: dict[str, str] = {}
    for name in sorted(layout.apps):
        seen = first.setdefault(name.lower(), name)
        if seen != name:
            files = layout.apps[name]
            where = files.app_yaml.path if files.app_yaml is not None else files.first
            layout.add(where, f"app {shown(name)} differs from app {shown(seen)} only in "
                              "case; rename one")


def _check_entry(layout: Layout, entry: TreeEntry) -> bool:
    path = entry.path
    suspicious = path.startswith(("/", ".")) or "//" in path or "/." in path or path.endswith("/")
    if suspicious and (path.startswith("/") or any(
            p in ("", ".", "..") for p in path.split("/"))):
        layout.add(entry.path, "path has '.', '..' or empty components")
        return False
    if entry.kind is EntryKind.SUBMODULE:
        layout.add(entry.path, "submodules are not supported in the state repository")
        return False
    return True


def _check_link(layout: Layout, path: str) -> None:
    target = layout.links[path]
    inside = relative_parts(path.rpartition("/")[0] + "/" + target)
    if target.startswith("/") or inside is None:
        layout.bad_links.add(path)
        layout.add(path, f"symlink points outside the repository ({shown(target)})")


def _classify(layout: Layout, entry: TreeEntry) -> None:
    path = entry.path
    is_yaml = path.endswith(_YAML)
    if path == CONFIG_FILE:
        layout.config = entry
        return
    parts = path.split("/")
    if parts[0] != "apps" or len(parts) < 2:
        return
    if len(parts) == 2:
        if is_yaml:
            layout.add(path, "YAML directly under apps/ is not in an app folder; "
                             "move it to apps/<app>/")
        return
    name = parts[1]
    in_files = len(parts) >= 4 and parts[2] == "files"
    if not (is_yaml or in_files):
        return
    files = layout.apps.get(name)
    if files is None:
        files = layout.apps[name] = AppFiles(name=name, first=path)
        if not _APP_NAME.fullmatch(name):
            layout.add(path, f"app name {shown(name)} must be letters, digits, '.', '_' or '-'")
    files.entries.append(entry)
    if in_files:
        _check_size(layout, entry, MAX_RAW_BYTES)
    elif len(parts) > 3:
        layout.add(path, "YAML in a subfolder of an app is not loaded; move it to "
                         f"apps/{name}/ (or apps/{name}/files/ for raw files)")
    elif parts[2] == "app.yaml":
        files.app_yaml = entry
    elif parts[2] == "app.yml":
        layout.add(path, "name the app file app.yaml")
    elif parts[2] in KUSTOMIZATION_FILES:
        # reconciler.render replaces a Kustomize app's files by their output.
        layout.add(path, f"apps/{name}/ is a Kustomize app and was not rendered before loading")
    else:
        files.resources.append(entry)


def _check_size(layout: Layout, entry: TreeEntry, limit: int) -> bool:
    if entry.kind is EntryKind.FILE and entry.size > limit:
        layout.add(entry.path, f"file is {entry.size} bytes, over the limit of {limit}; "
                               "it was not read")
        return False
    return True

