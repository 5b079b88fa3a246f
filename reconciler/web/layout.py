"""The page shell shared by every HTML page: head, inline CSS, header, footer. Pure.

Everything the page needs ships inline (no external asset, no font, no CDN),
so it renders the same behind a firewall and passes a strict CSP. Colours are
chosen for WCAG AA contrast (4.5:1 or better for text). Small formatting
helpers (times, durations, short commits, badges) live here too, so every
page spells a fact the same way. Every value is escaped with `html.escape`
before it is placed in markup; callers pass plain text, never HTML.
"""

from __future__ import annotations

import base64
import hashlib
import html
from dataclasses import dataclass
from datetime import UTC, datetime

CSS = """
:root{--fg:#1f2937;--muted:#4b5563;--bg:#f8fafc;--card:#fff;--line:#d1d5db;--accent:#1d4ed8;
--ok-bg:#dcfce7;--ok:#14532d;--bad-bg:#fee2e2;--bad:#7f1d1d;--run-bg:#dbeafe;--run:#1e3a8a;
--warn-bg:#fef3c7;--warn:#78350f;--idle-bg:#e5e7eb;--idle:#374151}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:var(--fg);background:var(--bg)}
a{color:var(--accent)}a:focus-visible{outline:3px solid var(--accent);outline-offset:2px}
header.site{background:#0f172a;color:#f8fafc;padding:.75rem 1rem}
header.site a{color:#f8fafc;text-decoration:none;font-weight:700;font-size:1.1rem}
header.site dl{display:flex;flex-wrap:wrap;gap:.25rem 1.25rem;margin:.4rem 0 0;font-size:.9rem}
header.site p.leader{margin:.3rem 0 0;font-size:.9rem;color:#e2e8f0}
header.site dt{color:#cbd5e1}header.site dd{margin:0 0 0 .35rem;font-family:ui-monospace,monospace;
overflow-wrap:anywhere}
.pair{display:flex;align-items:baseline}
main{max-width:72rem;margin:0 auto;padding:1rem}
section{background:var(--card);border:1px solid var(--line);border-radius:.5rem;
padding:1rem;margin:0 0 1rem}
h1{font-size:1.35rem;margin:0 0 .75rem}h2{font-size:1.1rem;margin:0 0 .5rem}
h3{font-size:1rem;margin:1rem 0 .4rem}
table{border-collapse:collapse;width:100%}
caption{text-align:left;font-size:.85rem;padding:0 0 .3rem;color:var(--muted)}
time{white-space:nowrap}
th,td{text-align:left;padding:.4rem .5rem;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:.85rem;color:var(--muted);font-weight:600}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.9em}
.badge{display:inline-block;padding:.05rem .5rem;border-radius:999px;font-size:.8rem;
font-weight:600;white-space:nowrap;background:var(--idle-bg);color:var(--idle)}
.ok{background:var(--ok-bg);color:var(--ok)}.bad{background:var(--bad-bg);color:var(--bad)}
.run{background:var(--run-bg);color:var(--run)}.warn{background:var(--warn-bg);color:var(--warn)}
.hosts{display:flex;flex-wrap:wrap;gap:.25rem;list-style:none;margin:0;padding:0}
.hosts li{font-size:.8rem;padding:.05rem .4rem;border-radius:.25rem}
.muted{color:var(--muted)}.reason{color:var(--bad)}
.bar{height:.6rem;background:var(--idle-bg);border-radius:999px;overflow:hidden;
margin:.4rem 0 .8rem}
.bar span{display:block;height:100%;background:var(--accent)}
.wave{border-top:1px solid var(--line);padding-top:.5rem;margin-top:.5rem}
.wave h3{display:flex;gap:.5rem;align-items:center;margin:.25rem 0}
pre.diff{background:#0f172a;color:#e2e8f0;padding:.75rem;border-radius:.4rem;overflow-x:auto;
font-size:.85rem;line-height:1.4;margin:.4rem 0}
pre.diff .add{color:#86efac}pre.diff .del{color:#fca5a5}pre.diff .hunk{color:#93c5fd}
details{margin:.3rem 0}summary{cursor:pointer}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem;margin:0}
dl.facts dt{color:var(--muted)}dl.facts dd{margin:0;overflow-wrap:anywhere}
footer{color:var(--muted);font-size:.85rem;text-align:center;padding:1rem}
@media (max-width:640px){
 main{padding:.5rem}section{padding:.75rem}
 table.stack thead{position:absolute;left:-9999px}
 table.stack tr{display:block;border-bottom:1px solid var(--line);padding:.35rem 0}
 table.stack td,table.stack th[scope=row]{display:flex;gap:.75rem;border:0;padding:.15rem 0}
 table.stack td::before,table.stack th[scope=row]::before{content:attr(data-label);
 flex:0 0 6.5rem;color:var(--muted);font-size:.85rem;font-weight:600}
 dl.facts{grid-template-columns:1fr}dl.facts dd{margin-bottom:.4rem}
}
"""

# Progressive enhancement: without JavaScript the page is complete; with it,
# each server-sent "update" replaces the sections it names with fresh HTML
# rendered by the same functions as the page itself. The stream's address comes
# from <body data-events> so that one constant script (one CSP hash) serves
# every live page; an update marked "final" (a finished deploy) closes it.
LIVE_SCRIPT = """
(function(){var b=document.body,u=b.getAttribute('data-events');
if(!u||!window.EventSource)return;var r=document.documentElement,es=new EventSource(u);
es.addEventListener('update',function(e){var d=JSON.parse(e.data),s=d.sections||{};
Object.keys(s).forEach(function(id){var el=document.getElementById(id);if(!el)return;
var t=document.createElement('template');t.innerHTML=s[id].trim();
if(t.content.firstElementChild)el.replaceWith(t.content.firstElementChild);});
r.setAttribute('data-live-updates',String(Number(r.getAttribute('data-live-updates')||0)+1));
if(d.final){es.close();r.setAttribute('data-live-final','');}});})();
"""
SCRIPT_HASH = f"'sha256-{base64.b64encode(hashlib.sha256(LIVE_SCRIPT.encode()).digest()).decode()}'"
"""The CSP source that allows exactly LIVE_SCRIPT and no other inline script."""


def e(value: object) -> str:
    return html.escape(str(value), quote=True)


@dataclass(frozen=True, kw_only=True)
class Site:
    """What every page header says: the tracked repo, branch and path, and which
    replica leads (plain text, e.g. "leader: pod-b_1f2e"; "" for no line)."""

    repo: str = ""
    branch: str = ""
    path: str = ""
    leader: str = ""


def page(title: str, body: str, *, site: Site | None = None, events: str | None = None) -> str:
    """A complete HTML document around `body` (already-escaped markup); `events`
    is the stream path a live page follows (None: a static page, no script)."""
    where = site or Site()
    facts = "".join(
        f'<div class="pair"><dt>{label}</dt><dd>{e(value)}</dd></div>'
        for label, value in (("repo", where.repo), ("branch", where.branch),
                             ("path", where.path)) if value
    )
    script = f"<script>{LIVE_SCRIPT}</script>" if events else ""
    follow = f' data-events="{e(events)}"' if events else ""
    leader = f'<p class="leader" id="leader">{e(where.leader)}</p>' if where.leader else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)} · reconciler</title><style>{CSS}</style></head><body{follow}>"
        '<header class="site"><a href="/">reconciler</a>'
        f'{f"<dl>{facts}</dl>" if facts else ""}{leader}</header>'
        f"<main>{body}</main>"
        '<footer>Read-only status page · <a href="/api/v1/status">JSON</a> · '
        '<a href="/metrics">metrics</a></footer>'
        f"{script}</body></html>"
    )


def when(ts: float | None) -> str:
    """A <time> element in UTC, or a dash."""
    if ts is None:
        return '<span class="muted">&ndash;</span>'
    moment = datetime.fromtimestamp(ts, UTC)
    return (f'<time datetime="{moment.isoformat(timespec="seconds")}">'
            f'{moment.strftime("%Y-%m-%d %H:%M:%S")} UTC</time>')


def duration(start: float | None, end: float | None) -> str:
    if start is None or end is None:
        return "&ndash;"
    seconds = max(0.0, end - start)
    if seconds < 10:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


def short(sha: str | None) -> str:
    return (sha or "")[:12]


_TONES = {
    "success": "ok", "healthy": "ok", "Healthy": "ok", "in sync": "ok", "ready": "ok",
    "failure": "bad", "error": "bad", "failed": "bad", "degraded": "bad", "Degraded": "bad",
    "running": "run", "applying": "run", "checking": "run", "pending": "", "rolling back": "warn",
    "interrupted": "warn", "skipped": "", "halted": "warn", "drifted": "warn",
    "Progressing": "run",
}


def badge(text: str, tone: str | None = None) -> str:
    """A coloured label; the colour only repeats what the text says."""
    chosen = tone if tone is not None else _TONES.get(text, _TONES.get(text.split(" ")[0], ""))
    if chosen == "" and text.startswith("rolled back"):
        chosen = "warn"
    return f'<span class="badge {chosen}">{e(text)}</span>'
