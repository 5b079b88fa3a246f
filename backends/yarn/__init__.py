"""The YARN backend package: YARN services as resources of the reconciler.

A desired resource is a YARN service spec (the YarnFile of the YARN Services
REST API), identified as ResourceId(kind="Service", name=<spec name>). The
package never imports the other backends; see docs/yarn.md for the options,
the API calls it makes and what it does not do.
"""

from __future__ import annotations

from backends.base import Backend, BackendContext
from backends.yarn.backend import YarnBackend, parse_options
from reconciler.model import Target

__all__ = ["YarnBackend", "open"]


def open(target: Target, context: BackendContext) -> Backend:
    """Open a backend for one YARN target (`url`, `user`, `token_file`/`token_env`, `timeout`)."""
    return YarnBackend(target, parse_options(target))
