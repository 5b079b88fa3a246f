"""The status page, a deploy page and a pull-request plan page: data in, HTML out. Pure.

Each function takes facts (from `reconciler.web.status` and the history) and
returns markup; no function here reads a clock, a file or a socket, so pages
are tested by calling them. The sections that change during a rollout
(`rollout_section`, `deploys_section`, `targets_section`) carry stable ids and
are also what the server-sent events carry, so the live page and a reload
always agree. A deploy page is built the same way (`deploy_sections`): while
the deploy runs, its sections travel on that deploy's own event topic.

Invariants: every value is escaped (`layout.e`); diffs come from plan records
whose diffs `reconciler.diff` already redacted; the pages link only to GET
routes and hold no form: the status page changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from reconciler.history import AppResult, DeployRecord
from reconciler.outcomes import AppStatus, DeployResult, StepStatus
from reconciler.web.layout import Site, badge, duration, e, page, short, when
from reconciler.web.live import AppState, RolloutState, Shown, WaveState
from reconciler.web.status import CommitView, Leadership, Overview, TargetStatus


def site_of(overview: Overview) -> Site:
    return Site(repo=overview.repo, branch=overview.branch, path=overview.path,
                leader=leader_text(overview.leader))


def leader_text(leader: Leadership | None) -> str:
    """One line for the page header: which replica deploys (plain text)."""
    if leader is None:
        return "leader election off"
    if leader.is_leader:
        text = "this replica leads"
    elif leader.holder is None:
        text = "leader: unknown"
    elif leader.holder == "":
        text = "leader: none (the Lease was released)"
    else:
        text = f"leader: {leader.holder}"
    # A follower that cannot reach the API server shows a stale holder: say so.
    return f"{text} (cannot reach the Lease: {leader.error})" if leader.error else text


def _commit_cell(sha: str, commit: CommitView | None) -> str:
    text = f'<code>{e(short(sha))}</code>'
    return f"{text} {e(commit.summary)}" if commit and commit.summary else text


# --- the status page ------------------------------------------------------------


def index(overview: Overview, rollout: RolloutState | None, deploys: Sequence[DeployRecord],
          commits: Mapping[str, CommitView]) -> str:
    ready = badge("ready") if overview.ready else badge("starting", "warn")
    head = (f'<p>Branch head <code>{e(short(overview.head))}</code> {ready}</p>'
            if overview.head else f"<p>{ready}</p>")
    waiting = "".join(f'<p class="muted">Waiting: {e(w)}</p>' for w in overview.waiting)
    if overview.history_unavailable:
        waiting += (f'<p role="status">{badge("stale", "warn")} The history is unavailable '
                    f'{e(overview.history_unavailable)}; this page shows what it last read, '
                    "and no rollout starts until it is back.</p>")
    body = (f"<h1>Deployments</h1>{head}{waiting}"
            f"{shards_section(overview.shards)}{targets_section(overview)}"
            f'<div aria-live="polite">{rollout_section(rollout)}</div>'
            f"{deploys_section(deploys, commits)}")
    return page("Status", body, events="/api/v1/events", site=site_of(overview))


def shards_section(shards: Sequence[Leadership]) -> str:
    """Every shard's Lease and its holder ("" without shards: the header line says it)."""
    if not shards:
        return ""
    rows = "".join(_shard_row(i, lease) for i, lease in enumerate(shards))
    return (
        '<section id="shards" aria-labelledby="shards-h"><h2 id="shards-h">Shards</h2>'
        '<table class="stack"><caption>Who holds each shard\'s Lease</caption><thead><tr>'
        '<th scope="col">Shard</th><th scope="col">Lease</th><th scope="col">Holder</th>'
        '<th scope="col">Election error</th></tr></thead>'
        f"<tbody>{rows}</tbody></table></section>"
    )


def _shard_row(index: int, lease: Leadership) -> str:
    if lease.holder is None:
        holder = '<span class="muted">unknown</span>'
    elif lease.holder == "":
        holder = '<span class="muted">none (released)</span>'
    else:
        holder = f"<code>{e(lease.holder)}</code>"
    if lease.is_leader:
        holder += f" {badge('this replica', 'ok')}"
    error = f'<span class="reason">{e(lease.error)}</span>' if lease.error else "&ndash;"
    mine = ' data-held="true"' if lease.is_leader else ""
    return (f'<tr data-shard="{index}"{mine}><th scope="row" data-label="Shard">{index}</th>'
            f'<td data-label="Lease"><code>{e(lease.lease)}</code></td>'
            f'<td data-label="Holder">{holder}</td>'
            f'<td data-label="Election error">{error}</td></tr>')


def targets_section(overview: Overview) -> str:
    rows = "".join(_target_row(t) for t in overview.targets)
    if not rows:
        rows = '<tr><td colspan="4" class="muted">No target deployed yet.</td></tr>'
    return (
        '<section id="targets" aria-labelledby="targets-h"><h2 id="targets-h">Targets</h2>'
        '<table class="stack"><caption>The revision live on each target and its drift'
        '</caption><thead><tr><th scope="col">Target</th><th scope="col">Backend</th>'
        '<th scope="col">Live revision</th><th scope="col">Drift</th></tr></thead>'
        f"<tbody>{rows}</tbody></table></section>"
    )


def _target_row(t: TargetStatus) -> str:
    revs = ", ".join(f"<code>{e(short(r))}</code>" for r in t.revisions) or "&ndash;"
    if t.drift_checked is None:
        drift = '<span class="muted">not checked yet</span>'
    elif not t.drifted:
        drift = f"{badge('in sync')} <small class=\"muted\">checked {when(t.drift_checked)}</small>"
    else:
        items = "".join(f"<li><code>{e(r)}</code></li>" for r in t.drifted)
        drift = (f"<details><summary>{badge(f'{len(t.drifted)} drifted', 'warn')}</summary>"
                 f"<ul>{items}</ul></details>")
    return (f'<tr><th scope="row" data-label="Target">{e(t.name)}</th>'
            f'<td data-label="Backend">{e(t.backend)}</td>'
            f'<td data-label="Revision">{revs}</td><td data-label="Drift">{drift}</td></tr>')


def rollout_section(rollout: RolloutState | None, *, sid: str = "rollout",
                    link: bool = True) -> str:
    """The rollout picture; `sid` prefixes its ids (a deploy page embeds it as
    "deploy-progress"), `link` names the deploy (pointless on its own page)."""
    if rollout is None:
        return (f'<section id="{sid}" aria-labelledby="{sid}-h"><h2 id="{sid}-h">Rollout'
                '</h2><p class="muted">No rollout since the daemon started.</p></section>')
    n, m = rollout.position()
    title = "Rollout in progress" if rollout.running else "Last rollout"
    where = f"wave {n} of {m}" if m else "reading live state"
    done = sum(1 for w in rollout.waves if w.state not in (Shown.PENDING, StepStatus.RUNNING))
    width = 100 if not rollout.running else (100 * done // m if m else 0)
    failed = rollout.state != DeployResult.SUCCESS
    message = f'<p class="reason">{e(rollout.message)}</p>' if rollout.message and failed \
        else (f"<p>{e(rollout.message)}</p>" if rollout.message else "")
    waves = "".join(_wave(w, rollout.current_wave) for w in rollout.waves)
    name = (f'<a href="/deploys/{rollout.deploy_id}">Deploy #{rollout.deploy_id}</a> of '
            if link else "Revision ")
    return (
        f'<section id="{sid}" aria-labelledby="{sid}-h" data-state="{e(rollout.state)}">'
        f'<h2 id="{sid}-h">{title}</h2>'
        f"<p>{name}<code>{e(short(rollout.revision))}</code> · {badge(rollout.state)} · "
        f'<strong id="{sid}-position">{e(where)}</strong></p>'
        f'<div class="bar" role="progressbar" aria-label="waves finished" aria-valuemin="0" '
        f'aria-valuemax="{m}" aria-valuenow="{done}"><span style="width:{width}%"></span></div>'
        f"{message}{waves}</section>"
    )


def _wave(wave: WaveState, current: int | None) -> str:
    mark = ' aria-current="step"' if wave.wave == current else ""
    rows = "".join(_app_row(a) for a in wave.apps) or (
        '<tr><td colspan="5" class="muted">Nothing to change.</td></tr>')
    return (
        f'<div class="wave" data-wave="{wave.wave}"{mark}>'
        f"<h3>Wave {wave.wave} {badge(wave.state)}</h3>"
        f'<table class="stack"><caption>Apps of wave {wave.wave}</caption><thead><tr>'
        '<th scope="col">App</th><th scope="col">Target</th><th scope="col">State</th>'
        '<th scope="col">Health</th><th scope="col">Hosts</th></tr></thead>'
        f"<tbody>{rows}</tbody></table></div>"
    )


def _app_row(app: AppState) -> str:
    hosts = "".join(
        f'<li class="badge {_tone(h.state)}" data-host="{e(h.host or app.target)}">'
        f"{e(h.host or app.target)}: {e(h.state)}</li>"
        for h in app.hosts
    ) or '<li class="muted">&ndash;</li>'
    note = f'<br><small class="reason">{e(app.message)}</small>' if app.message and \
        app.state not in (AppStatus.SUCCESS, Shown.RUNNING) else ""
    return (f'<tr data-app="{e(app.app)}"><th scope="row" data-label="App">{e(app.app)}</th>'
            f'<td data-label="Target">{e(app.target)}</td>'
            f'<td data-label="State">{badge(app.state)}{note}</td>'
            f'<td data-label="Health">{badge(app.health) if app.health else "&ndash;"}</td>'
            f'<td data-label="Hosts"><ul class="hosts">{hosts}</ul></td></tr>')


_HOST_TONES: dict[str, str] = {Shown.HEALTHY: "ok", Shown.DEGRADED: "bad", Shown.FAILED: "bad",
                               Shown.APPLYING: "run", Shown.CHECKING: "run"}


def _tone(state: str) -> str:
    return _HOST_TONES.get(state, "")


def deploys_section(deploys: Sequence[DeployRecord], commits: Mapping[str, CommitView]) -> str:
    rows = "".join(_deploy_row(d, commits.get(d.revision)) for d in deploys) or (
        '<tr><td colspan="7" class="muted">No deploy yet.</td></tr>')
    return (
        '<section id="deploys" aria-labelledby="deploys-h"><h2 id="deploys-h">Recent deploys</h2>'
        '<table class="stack"><caption>Newest first</caption><thead><tr>'
        '<th scope="col">Deploy</th><th scope="col">Commit</th><th scope="col">Author</th>'
        '<th scope="col">Started</th><th scope="col">Duration</th><th scope="col">Result</th>'
        '<th scope="col">Reason</th></tr></thead>'
        f"<tbody>{rows}</tbody></table></section>"
    )


def result_text(d: DeployRecord) -> str:
    return f"{d.result}, rolled back" if d.rolled_back else d.result


def _deploy_row(d: DeployRecord, commit: CommitView | None) -> str:
    reason = e(d.message) if d.result not in (DeployResult.SUCCESS, DeployResult.RUNNING) else ""
    return (
        f'<tr><th scope="row" data-label="Deploy"><a href="/deploys/{d.id}">#{d.id}</a></th>'
        f'<td data-label="Commit">{_commit_cell(d.revision, commit)}</td>'
        f'<td data-label="Author">{e(commit.author) if commit else "&ndash;"}</td>'
        f'<td data-label="Started">{when(d.started)}</td>'
        f'<td data-label="Duration">{duration(d.started, d.finished)}</td>'
        f'<td data-label="Result">{badge(result_text(d), _result_tone(d))}</td>'
        f'<td data-label="Reason" class="reason">{reason}</td></tr>'
    )


def _result_tone(d: DeployRecord) -> str | None:
    return "warn" if d.rolled_back else None


# --- one deploy -------------------------------------------------------------------


def deploy_page(d: DeployRecord, commit: CommitView | None, site: Site,
                rollout: RolloutState | None = None) -> str:
    """One deploy; `rollout` is the live picture, shown when it is this deploy's.
    A running deploy's page subscribes to its own updates (see `deploy_sections`)."""
    parts = deploy_sections(d, commit, rollout)
    body = (f'<p><a href="/">← All deploys</a></p>{parts["deploy-facts"]}'
            f'<div aria-live="polite">{parts["deploy-progress"]}</div>'
            f'{parts["deploy-apps"]}{parts["deploy-events"]}')
    events = f"/api/v1/events?deploy={d.id}" if d.result == DeployResult.RUNNING else None
    return page(f"Deploy #{d.id}", body, site=site, events=events)


def deploy_sections(d: DeployRecord, commit: CommitView | None,
                    rollout: RolloutState | None) -> dict[str, str]:
    """The parts of a deploy page by element id: the page and its live updates."""
    facts = [
        ("Result", badge(result_text(d), _result_tone(d))),
        ("Commit", f"<code>{e(d.revision)}</code>"),
        ("Message", e(commit.summary) if commit else "&ndash;"),
        ("Author", e(commit.author) if commit else "&ndash;"),
        ("Trigger", e(d.trigger)),
        ("Started", when(d.started)), ("Finished", when(d.finished)),
        ("Duration", duration(d.started, d.finished)),
        ("Changes", e(", ".join(f"{v} {k}" for k, v in sorted(d.summary.items())))
         or "&ndash;"),
    ]
    if d.message:
        facts.append(("Reason" if d.result != DeployResult.SUCCESS else "Outcome", e(d.message)))
    dl = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts)
    apps = "".join(_app_result_row(a) for a in d.apps) or (
        '<tr><td colspan="6" class="muted">No app was changed.</td></tr>')
    events = "".join(
        f'<tr><td data-label="Time">{when(ev.timestamp)}</td>'
        f'<td data-label="Event">{e(ev.kind.value)}</td>'
        f'<td data-label="Wave">{"" if ev.wave is None else ev.wave}</td>'
        f'<td data-label="App">{e(ev.app)}</td>'
        f'<td data-label="Hosts">{e(", ".join(ev.hosts))}</td>'
        f'<td data-label="Status">{badge(ev.status) if ev.status else ""}</td>'
        f'<td data-label="Message">{e(ev.message)}</td></tr>'
        for ev in d.events
    )
    # The tracker holds only the newest rollout: an older deploy's page has no
    # live picture, and keeps an empty placeholder so later swaps find their place.
    progress = (rollout_section(rollout, sid="deploy-progress", link=False)
                if rollout is not None and rollout.deploy_id == d.id
                else '<section id="deploy-progress" hidden></section>')
    return {
        "deploy-facts": (f'<section id="deploy-facts" data-result="{e(d.result)}">'
                         f'<h1>Deploy #{d.id}</h1><dl class="facts">{dl}</dl></section>'),
        "deploy-progress": progress,
        "deploy-apps": (
            '<section id="deploy-apps"><h2>Apps</h2><table class="stack"><caption>Result per '
            'app</caption><thead><tr><th scope="col">App</th><th scope="col">Wave</th>'
            '<th scope="col">Target</th><th scope="col">Hosts</th><th scope="col">Result</th>'
            f'<th scope="col">Rollback</th></tr></thead><tbody>{apps}</tbody></table></section>'),
        "deploy-events": (
            '<section id="deploy-events"><h2>Events</h2><table class="stack"><caption>Every '
            'step, in order</caption><thead><tr><th scope="col">Time</th><th scope="col">Event'
            '</th><th scope="col">Wave</th><th scope="col">App</th><th scope="col">Hosts</th>'
            '<th scope="col">Status</th><th scope="col">Message</th></tr></thead>'
            f'<tbody>{events}</tbody></table></section>'),
    }


def _app_result_row(a: AppResult) -> str:
    error = f'<br><small class="reason">{e(a.error)}</small>' if a.error else ""
    return (f'<tr><th scope="row" data-label="App">{e(a.app)}</th>'
            f'<td data-label="Wave">{"" if a.wave is None else a.wave}</td>'
            f'<td data-label="Target">{e(a.target)}</td>'
            f'<td data-label="Hosts">{e(", ".join(a.hosts)) or "&ndash;"}</td>'
            f'<td data-label="Result">{badge(a.status)}{error}</td>'
            f'<td data-label="Rollback">{e(a.rollback) or "&ndash;"}</td></tr>')


# --- a pull-request plan ----------------------------------------------------------


def plan_page(record: Mapping[str, Any], site: Site) -> str:
    sha = str(record.get("sha", ""))
    plan = record.get("plan") or {}
    problems = "".join(f"<li><code>{e(p)}</code></li>" for p in record.get("problems") or ())
    facts = (f"<dt>Commit</dt><dd><code>{e(sha)}</code></dd>"
             f"<dt>Ref</dt><dd><code>{e(record.get('ref', ''))}</code></dd>"
             f"<dt>State</dt><dd>{badge(str(record.get('state', '')))}</dd>"
             f"<dt>Summary</dt><dd>{e(record.get('description', ''))}</dd>")
    waves = "".join(_plan_wave(w) for w in plan.get("waves") or ())
    if record.get("plan") is not None and not waves:
        waves = '<p class="muted">Nothing to change: live state already matches.</p>'
    body = (f'<p><a href="/">← Status</a></p><section><h1>Plan for <code>{e(short(sha))}</code>'
            f'</h1><dl class="facts">{facts}</dl>'
            + (f'<h2>Problems</h2><ul class="reason">{problems}</ul>' if problems else "")
            + f"</section>{waves}")
    return page(f"Plan {short(sha)}", body, site=site)


def _plan_wave(wave: Mapping[str, Any]) -> str:
    phase = "prune" if wave.get("phase") == "prune" else "wave"
    title = f"Prune (wave {wave.get('wave')})" if phase == "prune" else f"Wave {wave.get('wave')}"
    apps = "".join(_plan_app(a) for a in wave.get("apps") or ())
    return f"<section><h2>{e(title)}</h2>{apps}</section>"


def _plan_app(app: Mapping[str, Any]) -> str:
    changes = app.get("changes") or ()
    items = "".join(
        f"<details{' open' if len(changes) <= 10 else ''}><summary>"
        f"{badge(str(c.get('action', '')), _ACTION_TONES.get(str(c.get('action')), ''))} "
        f"<code>{e(c.get('resource', ''))}</code>"
        f"{' on ' + e(c.get('host')) if c.get('host') else ''}</summary>"
        f"{diff_block(str(c.get('diff') or ''))}</details>"
        for c in changes
    )
    return (f"<h3>{e(app.get('app', ''))} <small class=\"muted\">→ "
            f"{e(app.get('target', ''))}</small></h3>{items}")


_ACTION_TONES = {"create": "ok", "update": "run", "delete": "bad"}


def diff_block(diff: str) -> str:
    if not diff:
        return '<p class="muted">No textual difference.</p>'
    lines = []
    for line in diff.split("\n"):
        cls = ("hunk" if line.startswith("@@") else
               "add" if line.startswith("+") and not line.startswith("+++") else
               "del" if line.startswith("-") and not line.startswith("---") else "")
        lines.append(f'<span class="{cls}">{e(line)}</span>' if cls else e(line))
    return f'<pre class="diff">{chr(10).join(lines)}</pre>'


def error_page(status: int, message: str, site: Site | None = None) -> str:
    body = f"<section><h1>{status}</h1><p>{e(message)}</p><p><a href=\"/\">Status page</a></p>" \
           "</section>"
    return page(str(status), body, site=site)
