"""The VM backend: files, directories, symlinks, services and commands on
plain hosts, over SSH (paramiko) or on the local machine.

Layout: `options` (typed target options), `resources` (paths under the root,
comparable forms; pure), `facts` (one fact command per host and its pure
parser), `live` (what to ask a host and what its facts mean; pure), `content`
(the text of changed files for readable diffs; pure), `records` (what the
backend remembers on each host; pure), `steps` (changes to batched work;
pure), `transport` and `ssh` (the run/put/get seam), `health` (probes),
`backend` (the Backend protocol). See docs/vm.md.
This package never imports another backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from backends.base import BackendContext
from backends.vm.options import options_of
from reconciler.model import Target

if TYPE_CHECKING:
    from backends.vm.backend import HostsFailed, VmBackend

__all__ = ["HostsFailed", "VmBackend", "open"]


def open(target: Target, context: BackendContext) -> VmBackend:
    """Open the VM backend for `target`; connections are made on first use."""
    from backends.vm.backend import VmBackend

    del context  # the VM backend keeps no files of its own
    return VmBackend(target, options_of(target))


def __getattr__(name: str) -> object:
    # The backend loads on first use: the state-repo loader imports
    # `backends.vm.options` and must not pay for the rest.
    if name in ("HostsFailed", "VmBackend"):
        from backends.vm import backend

        return getattr(backend, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
