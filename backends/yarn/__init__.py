"""The YARN backend package: YARN services as resources of the reconciler.

A desired resource is a YARN service spec (the YarnFile of the YARN Services
REST API), identified as ResourceId(kind="Service", name=<spec name>). The
package never imports the other backends; see docs/yarn.md for the options,
the API calls it makes and what it does not do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from backends.base import Backend, BackendContext
from backends.yarn.options import options_of
from reconciler.model import Target

if TYPE_CHECKING:
    from backends.yarn.backend import YarnBackend

__all__ = ["YarnBackend", "open"]


def open(target: Target, context: BackendContext) -> Backend:
    """Open a backend for one YARN target (`url`, `user`, `token_file`/`token_env`, `timeout`)."""
    from backends.yarn.backend import YarnBackend

    return YarnBackend(target, options_of(target))


def __getattr__(name: str) -> object:
    # The backend (and its HTTP client) loads on first use: the state-repo loader
    # imports `backends.yarn.options` and must not pay for it.
    if name == "YarnBackend":
        from backends.yarn.backend import YarnBackend

        return YarnBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
