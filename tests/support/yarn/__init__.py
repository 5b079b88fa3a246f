"""A YARN Services API server for tests: real HTTP on 127.0.0.1, state in memory.

Why: no ResourceManager runs on a test machine, so this server plays one. It
follows the YARN Services REST API (`/app/v1/services`, Hadoop 3.x): the paths,
the JSON shapes of Service, Component and Container, the service states, and
the status codes of Hadoop's ApiServer where the docs and the code differ
(a create of a taken name answers 500 "Service name X is already taken.").
The list call is documented as TBD and ApiServer does not serve it, so by
default `GET /app/v1/services` answers 405; `list_services=True` serves it.

Determinism: a service moves one step per GET of it (ACCEPTED -> STARTED ->
READY containers -> STABLE; an upgrade moves its UPGRADING containers to READY,
then finalises), or only through `advance()` when `auto_advance=False`.
`fail(name)` fails a service now, `doom(name)` fails it at its next step.

Simplifications: upgrades keep the set of components; containers go READY in
one step; no queues, lifetimes or placement.

Modules: records (stored specs, live services, answers), api (the calls,
without HTTP), server (HTTP, test controls, request log).
"""

from tests.support.yarn.records import ROOT, HttpAnswer, answer, resolve
from tests.support.yarn.server import YarnServer

__all__ = ["ROOT", "HttpAnswer", "YarnServer", "answer", "resolve"]
