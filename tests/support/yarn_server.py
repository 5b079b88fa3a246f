"""Where tests import the YARN test server from; it lives in tests/support/yarn/."""

from tests.support.yarn import ROOT, HttpAnswer, YarnServer, answer, resolve

__all__ = ["ROOT", "HttpAnswer", "YarnServer", "answer", "resolve"]
