"""Whatever `validate` accepts, `sync` and `run` accept, and the reverse.

Each sample value of each option is judged twice: by the state-repo loader
(what `reconciler validate` runs) and by the part that uses the option at run
time (the backend a sync opens, a real sync of app options from git objects,
the daemon's sync-window check, the daemon's configuration and flags). The
two verdicts must agree, and where both accept, they must mean the same thing
(the same seconds, the same policy, the same days).

The samples are walked from the schemas themselves: an option without samples
here fails `test_every_option_has_samples` (targets) or
`test_every_app_option_has_samples`, so a new option cannot skip parity.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from backends.base import BackendContext, open_backend
from backends.kubernetes import options as k8s_options
from reconciler.daemon import windows
from reconciler.daemon.config import parse_config, with_overrides
from reconciler.engine import Engine, EngineSettings
from reconciler.errors import ReconcilerError, ValidationError
from reconciler.load.apps import APP_KEYS
from reconciler.model import (
    App,
    BackendKind,
    DesiredState,
    HealthExpr,
    Location,
    SyncWindow,
    Target,
)
from reconciler.render import load_rendered
from reconciler.tree import DirectoryTree
from tests.load.conftest import write_tree

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: not-a-real-token}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
"""

# Durations: YAML text -> seconds, or None where the value is not a duration.
DURATIONS: dict[str, float | None] = {
    "30": 30.0, "1.5": 1.5, '"90"': 90.0, "30s": 30.0, "5m": 300.0, "1h30m": 5400.0,
    "250ms": 0.25, "2d": 172800.0, "1.5h": 5400.0, "1m30s": 90.0,
    "0": None, "-5": None, "soon": None, "true": None, '""': None, "30 s": None,
    "1h 30m": None, ".inf": None, "5x": None, "[30]": None,
}

# Each backend's base target and the samples of each of its options.
BASES: dict[BackendKind, str] = {
    BackendKind.VM: "{backend: vm, hosts: [web-1], identity_file: /k/id, known_hosts: /k/kh}",
    BackendKind.KUBERNETES: "{backend: kubernetes, kubeconfig: KUBECONFIG}",
    BackendKind.YARN: '{backend: yarn, url: "http://127.0.0.1:1"}',
}
_DURATION_SAMPLES = list(DURATIONS)
# CEL health rules, compiled by both sides: valid ones, a syntax error, a missing
# `current`, a bad apiVersion, an unknown key, a duplicate kind, not a list.
_HEALTH_RULES = [
    """[{apiVersion: example.com/v1, kind: Widget, current: "status.phase == 'Ready'"}]""",
    """[{apiVersion: v1, kind: ConfigMap, current: "has(data)", inProgress: "false",
        failed: "!has(data)"}]""",
    "[]",
    '[{apiVersion: example.com/v1, kind: Widget, current: "status.phase =="}]',
    '[{apiVersion: example.com/v1, kind: Widget, current: "true", failed: "1 +"}]',
    "[{apiVersion: v1, kind: ConfigMap}]",
    '[{apiVersion: example.com, kind: Widget, current: "true"}]',
    '[{apiVersion: v1, kind: ConfigMap, current: "true", ready: "true"}]',
    '[{apiVersion: v1, kind: ConfigMap, current: "true"}, '
    '{apiVersion: v1, kind: ConfigMap, current: "false"}]',
    '{apiVersion: v1, kind: ConfigMap, current: "true"}',
]
SAMPLES: dict[BackendKind, dict[str, list[str]]] = {
    BackendKind.VM: {
        "transport": ["ssh", "local", "scp", "1"],
        "hosts": ["[web-1, web-2]", '["web-1:2222"]', "[]", "web-1", '["bad host"]',
                  "[web-1, web-1]", "[1]"],
        "user": ["deploy", '""', "1", "[deploy]"],
        "identity_file": ["/k/other", '""', "true"],
        "known_hosts": ["/k/other", '""', "2"],
        "root": ["/srv", "srv/app", '"/srv/{host}"', '""', "7"],
        "port": ["22", "2222", "65535", "0", "65536", '"22"', "22.5", "true"],
        "sudo": ["true", "false", "1", '"yes"'],
        "sudo_command": ["sudo", '"/usr/local/bin/sudo -E"', '""', '"  "', '"\'"', "1"],
        "connect_timeout": _DURATION_SAMPLES,
        "parallel": ["1", "50", "0", "-1", '"5"', "2.5"],
    },
    BackendKind.KUBERNETES: {
        "kubeconfig": ["KUBECONFIG", '""', "1"],
        "context": ["c", '""', "1"],
        "in_cluster": ["false", '"no"', "0"],
        "namespace": ["shop", '""', "1"],
        "force_conflicts": ["true", "false", "1", '"true"'],
        "propagation_policy": ["Background", "Foreground", "Orphan", "orphan", "Delete", "1"],
        "crd_timeout": _DURATION_SAMPLES,
        "delete_timeout": _DURATION_SAMPLES,
        "namespaces": ["[shop]", "[shop, web]", "[]", "shop", '[""]', "[1]"],
        "watch": ["true", "false", "1"],
        "create_namespace": ["true", "false", "1", '"yes"'],
        "replace": ["true", "false", "1", '"true"'],
        "exclude": ["[Event]", '["*.cilium.io", Lease.coordination.k8s.io]', "[]", "Event",
                    '["bad kind!"]', "[1]"],
        "health_exprs": _HEALTH_RULES,
        "impersonate": ["{service_account: team-a/deployer}", "{service_account: deployer}",
                        '"team-a/deployer"', "{service_account: Team-A/deployer}",
                        "{service_account: team-a/deployer, group: admins}", "{}", "1"],
    },
    BackendKind.YARN: {
        "url": ['"https://rm:8088/base"', '"rm:8088"', '"ftp://rm"', '""', "1"],
        "user": ["deploy", '""', "1"],
        "token_file": ["TOKEN_FILE", '""', "1"],
        "token_env": ["PARITY_TOKEN", '""', "1"],
        "timeout": _DURATION_SAMPLES,
        "poll_interval": _DURATION_SAMPLES,
        "settle_timeout": _DURATION_SAMPLES,
        "min_ready": _DURATION_SAMPLES,
    },
}
# Options whose meaning is checked beyond the verdict: YAML text -> the value used.
MEANINGS: dict[tuple[BackendKind, str], Callable[[str], Any]] = {
    (BackendKind.KUBERNETES, "propagation_policy"): lambda text: text,
    (BackendKind.KUBERNETES, "create_namespace"): yaml.safe_load,
    (BackendKind.KUBERNETES, "replace"): yaml.safe_load,
    (BackendKind.KUBERNETES, "exclude"): lambda text: tuple(yaml.safe_load(text)),
    (BackendKind.KUBERNETES, "impersonate"): lambda text: yaml.safe_load(text)["service_account"],
    (BackendKind.KUBERNETES, "health_exprs"): lambda text: _rules(yaml.safe_load(text), 3),
    **{(kind, key): lambda text: DURATIONS[text]
       for kind, keys in SAMPLES.items() for key, values in keys.items()
       if values is _DURATION_SAMPLES},
}


def _rules(raw: list[dict[str, str]], line: int, file: str = "reconciler.yaml"
           ) -> tuple[HealthExpr, ...]:
    """The health rules `raw` means, as written at `file`:`line` (one flow line)."""
    return tuple(HealthExpr(api_version=r["apiVersion"], kind=r["kind"], current=r["current"],
                            in_progress=r.get("inProgress", ""), failed=r.get("failed", ""),
                            location=Location(file=file, line=line)) for r in raw)


def schema_keys(kind: BackendKind) -> set[str]:
    """Every option key the backend's schema knows (besides `backend`)."""
    from reconciler.load import targets

    return set(targets.option_keys(kind)) - {"backend"}


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    (tmp_path / "kubeconfig").write_text(KUBECONFIG)
    (tmp_path / "token").write_text("secret-token\n")
    monkeypatch.setenv("PARITY_TOKEN", "secret-token")
    return {"KUBECONFIG": str(tmp_path / "kubeconfig"), "TOKEN_FILE": str(tmp_path / "token")}


def _fill(text: str, env: Mapping[str, str]) -> str:
    for name, value in env.items():
        text = text.replace(name, value)
    return text


def _validate(root: Path, files: Mapping[str, str]) -> tuple[DesiredState | None, list[str]]:
    write_tree(root, files, base=False)
    try:
        # What `reconciler validate` runs: the loader behind the render edge.
        return load_rendered(DirectoryTree(root)), []
    except ValidationError as exc:
        return None, [str(p) for p in exc.problems]


def _open(target: Target, data_dir: Path) -> tuple[Any, str]:
    """The backend a sync would open for `target`, or why it refuses."""
    try:
        return open_backend(target, BackendContext(data_dir=data_dir)), ""
    except ReconcilerError as exc:
        return None, str(exc)


def _target_cases() -> list[tuple[BackendKind, str, str]]:
    return [(kind, key, value) for kind, keys in SAMPLES.items()
            for key, values in keys.items() for value in values]


def test_every_option_has_samples() -> None:
    for kind in BackendKind:
        assert schema_keys(kind) == set(SAMPLES[kind]), kind


@pytest.mark.parametrize(("kind", "key", "value"), _target_cases(),
                         ids=[f"{k.value}-{o}-{v}" for k, o, v in _target_cases()])
def test_target_options_mean_the_same_to_validate_and_sync(
    kind: BackendKind, key: str, value: str, env: dict[str, str], tmp_path: Path
) -> None:
    base = BASES[kind]
    if key == "transport" and value == "local":
        base = "{backend: vm}"
    spec = _fill(base[:-1] + f", {key}: {value}}}", env)
    if key in ("hosts", "identity_file", "known_hosts", "kubeconfig", "url"):
        # These are in the base already: the sample replaces them.
        raw = yaml.safe_load(_fill(base, env))
        raw[key] = yaml.safe_load(_fill(value, env))
        spec = yaml.safe_dump(raw, default_flow_style=True).strip()
    config = f"apiVersion: reconciler/v1\ntargets:\n  t: {spec}\n"
    desired, problems = _validate(tmp_path / "state", {"reconciler.yaml": config})

    # The run-time side, given the raw mapping as written (what a backend used to
    # re-check on its own), and given what the loader produced.
    raw_options = dict(yaml.safe_load(spec))
    raw_options.pop("backend")
    raw = Target(name="t", backend=kind, options=raw_options,
                 location=Location(file="reconciler.yaml", line=3))
    from_raw, why = _open(raw, tmp_path / "data")
    assert (from_raw is not None) == (desired is not None), (
        f"validate says {problems or 'valid'}; sync says {why or 'valid'}")
    if desired is None or from_raw is None:
        return
    opened, why = _open(desired.targets["t"], tmp_path / "data")
    assert opened is not None, why
    meaning = MEANINGS.get((kind, key))
    try:
        if meaning is not None:
            assert getattr(opened.options, key) == meaning(value)
            assert getattr(from_raw.options, key) == meaning(value)
    finally:
        opened.close()
        from_raw.close()


# Sync windows: schedule -> (days of the week on which it fires at 00:00, Monday=0),
# or None where the schedule is invalid.
MON, TUE, WED, THU, FRI, SAT, SUN = range(7)
SCHEDULES: dict[str, set[int] | None] = {
    "0 0 * * *": {MON, TUE, WED, THU, FRI, SAT, SUN},
    "0 0 * * 0": {SUN},
    "0 0 * * 7": {SUN},
    "0 0 * * 1": {MON},
    "0 0 * * 6": {SAT},
    "0 0 * * sun": {SUN},
    "0 0 * * SUN": {SUN},
    "0 0 * * mon-fri": {MON, TUE, WED, THU, FRI},
    "0 0 * * 1-5": {MON, TUE, WED, THU, FRI},
    "0 0 * * sun-mon": {SUN, MON},
    "0 0 * * sat-sun": {SAT, SUN},
    "0 0 * * fri-mon": {FRI, SAT, SUN, MON},
    "0 0 * * 6-0": {SAT, SUN},
    "0 0 * * 5-7": {FRI, SAT, SUN},
    "0 0 * * 0-6": {MON, TUE, WED, THU, FRI, SAT, SUN},
    "0 0 * * 0,7": {SUN},
    "0 0 * * */2": {SUN, TUE, THU, SAT},
    "0 0 * * 1-5/2": {MON, WED, FRI},
    "0 0 * * sat,sun": {SAT, SUN},
    "0 0 * * 8": None,
    "0 0 * * -1": None,
    "0 0 * * funday": None,
    "0 0 * * mon-": None,
    "0 0 * * */0": None,
    "0 0 * *": None,
    "0 0 * * * *": None,
    "60 0 * * *": None,
    "0 24 * * *": None,
    "0 0 0 * *": None,
    "0 0 32 * *": None,
    "0 0 * 13 *": None,
    "0 0 * jan-mar *": {MON, TUE, WED, THU, FRI, SAT, SUN},
    "0 0 * foo *": None,
    "0 0 31 2 *": None,
}
# 2025-03-03 is a Monday; the seven days from it, one window check at 00:30 each.
MONDAY = datetime(2025, 3, 3, tzinfo=UTC)


def _fires_on(window: SyncWindow, start: datetime) -> set[int] | None:
    """The weekdays of the week from `start` on which `window` is open at 00:30."""
    try:
        days = {(start + timedelta(days=d)).weekday() for d in range(7)
                if windows.is_open(window, start + timedelta(days=d, minutes=30))}
    except ReconcilerError:
        return None
    return days


@pytest.mark.parametrize("schedule", list(SCHEDULES))
def test_sync_windows_mean_the_same_to_validate_and_run(schedule: str, tmp_path: Path) -> None:
    config = ("apiVersion: reconciler/v1\ntargets:\n  prod: {backend: kubernetes}\n"
              f"sync_windows:\n  - {{schedule: {schedule!r}, duration: 1h}}\n")
    desired, problems = _validate(tmp_path / "state", {"reconciler.yaml": config})
    window = (desired.sync_windows[0] if desired is not None else
              SyncWindow(schedule=schedule, duration=3600.0, kind="deny", targets=(),
                         location=Location(file="reconciler.yaml", line=5)))
    days = _fires_on(window, MONDAY)
    expected = SCHEDULES[schedule]
    assert (desired is not None) == (days is not None), (
        f"validate says {problems or 'valid'}; the daemon says {days}")
    assert (desired is not None) == (expected is not None), problems
    assert days == expected


APP_DURATION_KEYS = ("timeout",)
HEALTH_DURATION_KEYS = ("timeout", "interval")


def _app_files(app_yaml: str) -> dict[str, str]:
    return {
        "reconciler.yaml": "apiVersion: reconciler/v1\ntargets:\n"
                           "  laptop: {backend: vm, transport: local, root: ./r}\n",
        "apps/web/app.yaml": app_yaml,
    }


@pytest.mark.parametrize("value", list(DURATIONS))
def test_one_duration_grammar_for_apps_targets_and_the_daemon(value: str, tmp_path: Path) -> None:
    """The same text is a duration everywhere or nowhere, with the same seconds."""
    seconds = DURATIONS[value]
    desired, problems = _validate(
        tmp_path / "app", _app_files(f"target: laptop\ntimeout: {value}\nhealth:\n"
                                     f"  - {{tcp: {{port: 80}}, timeout: {value}, "
                                     f"interval: {value}}}\n"))
    assert (desired is not None) == (seconds is not None), problems
    if desired is not None:
        app = desired.apps["web"]
        assert app.timeout == seconds
        assert (app.health[0].timeout, app.health[0].interval) == (seconds, seconds)

    daemon_keys = ("poll_interval", "drift_interval", "stop_timeout")
    lines = "".join(f"{key}: {value}\n" for key in daemon_keys)
    lines += ("leader_election: {lease_duration: 1000d, renew_deadline: 999d, "
              f"retry_period: {value}}}\n")
    try:
        daemon = parse_config("repo: /r\n" + lines)
    except ReconcilerError as exc:
        assert seconds is None, f"the daemon config refuses {value}: {exc}"
    else:
        assert seconds is not None, f"the daemon config accepts {value}"
        assert (daemon.poll_interval, daemon.drift_interval, daemon.stop_timeout,
                daemon.leader_election.retry_period) == (seconds,) * 4

    flag = str(yaml.safe_load(value)) if seconds is not None else value
    try:
        flagged = with_overrides(parse_config("repo: /r\n"), {"poll_interval": flag})
    except ReconcilerError as exc:
        assert seconds is None, f"--poll-interval {flag} is refused: {exc}"
    else:
        assert seconds is not None, f"--poll-interval {flag} is accepted"
        assert flagged.poll_interval == seconds


# App options: app.yaml key -> sample values. `validate` reads a directory;
# `sync` reads the same files from git objects through the engine.
APP_SAMPLES: dict[str, list[str]] = {
    "target": ["laptop", "nowhere", "1"],
    "wave": ["2", "-3", "1.5", '"2"', "1000001"],
    "depends_on": ["[base]", "[nowhere]", "base", "[base, base]"],
    "rollout": ["{batch: 1}", '{batch: "50%"}', "{batch: 0}", '{batch: "150%"}',
                "{max_failures: 1}", "{max_failures: -1}", "{bach: 1}"],
    "health": ['[{command: "true", interval: 10ms}]', "[{tcp: {port: 0}}]",
               '[{http: {url: "ftp://x"}}]', "[]", '[{command: "true", retries: -1}]'],
    "prune": ["true", "false", "1"],
    "prune_first": ["true", "false", "1"],
    "helm": ["{chart: charts/web}", "{chart: 1}", "{}", "{chart: charts/web, bogus: 1}"],
    "rollback": ["auto", "none", "always"],
    "timeout": ["5m", "90", "soon", "0"],
    # On this VM target every non-empty block is refused, by both sides alike;
    # KUBERNETES_APP_SAMPLES below judge the block on a Kubernetes target.
    "kubernetes": ["{replace: true}", "{}", "{replace: 1}", "[replace]"],
}


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=T", "-c", "user.email=t@e.com",
                    *args], check=True, capture_output=True, timeout=60)


def test_every_app_option_has_samples() -> None:
    assert set(APP_SAMPLES) == set(APP_KEYS)


@pytest.mark.parametrize(("key", "value"),
                         [(k, v) for k, values in APP_SAMPLES.items() for v in values])
def test_app_options_mean_the_same_to_validate_and_sync(key: str, value: str,
                                                        tmp_path: Path) -> None:
    root = tmp_path / "root"
    app_yaml = f"{key}: {value}\n" + ("target: laptop\n" if key != "target" else "")
    files = {
        "reconciler.yaml": "apiVersion: reconciler/v1\ntargets:\n"
                           f"  laptop: {{backend: vm, transport: local, root: {root}}}\n",
        "apps/base/app.yaml": "target: laptop\n",
        "apps/web/app.yaml": app_yaml,
        "apps/web/site.yaml": "kind: File\npath: /site.txt\ncontent: hello\n",
    }
    repo = tmp_path / "state"
    desired, problems = _validate(repo, files)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "sample")
    engine = Engine(EngineSettings(repo=str(repo), rev="main", data_dir=tmp_path / "data"))
    try:
        result = engine.sync()
    finally:
        engine.close()
    assert (result.result != "error") == (desired is not None), (
        f"validate says {problems or 'valid'}; sync says {result.result}: {result.message}")
    if desired is not None:
        assert result.result == "success", result.message
        assert (root / "site.txt").read_text() == "hello"
        assert [str(p) for p in result.problems] == []
    else:
        assert sorted(str(p) for p in result.problems) == sorted(problems)


# app.yaml's `kubernetes:` block on a Kubernetes target: key -> sample values.
# `validate` loads the app; at sync the backend takes the block as the App
# carries it (`app_options_of`: typed by the loader, or a mapping built in code).
KUBERNETES_APP_SAMPLES: dict[str, list[str]] = {
    "create_namespace": ["true", "false", "1"],
    "replace": ["true", "false", '"true"'],
    "force_conflicts": ["true", "false", "0"],
    "propagation_policy": ["Orphan", "Foreground", "orphan", "1"],
    "health_exprs": _HEALTH_RULES,
}
_APP_RULE_LINE = 2


def test_every_kubernetes_app_option_has_samples() -> None:
    assert set(KUBERNETES_APP_SAMPLES) == set(k8s_options.APP_KEYS)


def _kubernetes_app_cases() -> list[tuple[str, str]]:
    return [(k, v) for k, values in KUBERNETES_APP_SAMPLES.items() for v in values]


@pytest.mark.parametrize(("key", "value"), _kubernetes_app_cases())
def test_app_kubernetes_options_mean_the_same_to_validate_and_sync(
    key: str, value: str, env: dict[str, str], tmp_path: Path
) -> None:
    block = f"{{{key}: {value}}}"
    files = {
        "reconciler.yaml": "apiVersion: reconciler/v1\ntargets:\n"
                           f"  prod: {{backend: kubernetes, kubeconfig: {env['KUBECONFIG']}}}\n",
        "apps/web/app.yaml": f"target: prod\nkubernetes: {block}\n",
    }
    desired, problems = _validate(tmp_path / "state", files)
    raw = App(name="web", target="prod", options=yaml.safe_load(block),
              location=Location(file="apps/web/app.yaml", line=_APP_RULE_LINE))
    try:
        from_raw, why = k8s_options.app_options_of(raw), ""
    except ReconcilerError as exc:
        from_raw, why = None, str(exc)
    assert (from_raw is not None) == (desired is not None), (
        f"validate says {problems or 'valid'}; sync says {why or 'valid'}")
    if desired is None or from_raw is None:
        return
    loaded = desired.apps["web"].options
    assert isinstance(loaded, k8s_options.AppOptions)
    assert loaded == from_raw
    # Laid over the target's options, the block means what it says.
    target = k8s_options.options_of(desired.targets["prod"]).for_app(loaded)
    meant = yaml.safe_load(value)
    if key == "health_exprs":
        assert target.health_exprs == _rules(meant, _APP_RULE_LINE, "apps/web/app.yaml")
    else:
        assert getattr(target, key) == meant
