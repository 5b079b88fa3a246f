"""`reconciler run`: a thin loop around the Engine.

The daemon owns no deploy logic. It turns triggers (a poll, a file watch on a
local repository, a webhook, a drift timer) into calls of `Engine.sync` and
`Engine.drift`, one at a time, and turns the engine's events into commit
statuses. Modules: `config` (the YAML file, pure), `windows` (sync-window
arithmetic, pure), `scheduler` (coalescing and failed-commit decisions, pure),
`triggers` (poll and file watch), `logging` (structured logs), `service`
(wiring and lifecycle).
"""
