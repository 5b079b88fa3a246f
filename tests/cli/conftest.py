"""Fixtures for the CLI tests: the recording `forge` server that `plan --post-status` posts to."""

from __future__ import annotations

from tests.support.httpservers import forge

__all__ = ["forge"]
