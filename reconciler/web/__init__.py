"""The read-only status page, JSON API, live events, metrics and webhook receivers.

`server` serves HTTP; `routes` is the route table; `pages` and `layout` render
HTML and `api` JSON, both pure; `status` is the read-only `StatusSource` the
pages read; `live` folds engine events into the rollout in progress;
`events_stream` fans them out as server-sent events; `metrics` exports them
to Prometheus; `auth` optionally protects the page; `wiring` builds it all
from a running daemon. See docs/status-page.md.
"""
