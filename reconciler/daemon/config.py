"""The daemon's configuration file, parsed and checked before anything starts.

Why a module of its own: a daemon that starts with a typo in its config and
then misbehaves for hours is worse than one that refuses to start. So parsing
is pure (text in, `DaemonConfig` out, no environment, no file system) and
strict: every key has a default except `repo`, an unknown key is an error that
names `file:line` and the closest known key, and durations read as the state
repo's do (`reconciler.options`: `30s`, `5m`, `1h30m`, `90`). Secrets never
live in this file: it names files or environment variables that hold them
(`token_file`, `token_env`, `github_secret_env`).

Invariants:
- `parse_config` raises `ConfigError` with one line `file:line: message`, or
  returns a fully defaulted, frozen `DaemonConfig`.
- Relative paths are resolved against the directory of the config file, so a
  daemon behaves the same whatever its working directory.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from reconciler import options as grammar
from reconciler.errors import ConfigError
from reconciler.history.settings import SCHEMES, HistorySettings
from reconciler.reporters import TYPES as REPORTER_TYPES
from reconciler.source.verify import VerifyPolicy, make_policy

LOG_FORMATS = ("auto", "json", "text", "plain")
"""`plain` is the earlier name of `text`."""
LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True, kw_only=True)
class CredentialsConfig:
    """Where git credentials live; never the secrets themselves."""

    token_file: Path | None = None
    token_env: str | None = None
    username: str | None = None
    ssh_key: Path | None = None
    known_hosts: Path | None = None


@dataclass(frozen=True, kw_only=True)
class ReporterConfig:
    """One commit-status reporter. `options` holds the type-specific keys, already
    checked for gitnotes and passed through for the others (their modules check them)."""

    type: str
    options: Mapping[str, Any] = field(default_factory=dict)
    location: str = ""


@dataclass(frozen=True, kw_only=True)
class WebhooksConfig:
    github_secret_env: str | None = None
    gitlab_secret_env: str | None = None
    gitea_secret_env: str | None = None


@dataclass(frozen=True, kw_only=True)
class HttpConfig:
    """Limits of the HTTP server (`reconciler.web.server.WebApp` has the same names)."""

    request_deadline: float = 30.0
    """Seconds for a whole request (request line, headers, body) to arrive."""
    max_connections: int = 64
    """Connections served at once, one thread each; more wait briefly, then get 503."""
    max_streams: int = 32
    """Of those, open event streams (status pages left open)."""


@dataclass(frozen=True, kw_only=True)
class PullRequestsConfig:
    enabled: bool = True
    refspecs: tuple[str, ...] = ("refs/pull/*/head",)
    keep: int = 500
    """Plan records kept in the history besides those of current heads."""


@dataclass(frozen=True, kw_only=True)
class LeaderElectionConfig:
    """Leader election between replicas over a coordination.k8s.io/v1 Lease
    (`reconciler.daemon.leader`). Durations mean what client-go's mean."""

    enabled: bool = False
    kubeconfig: Path | None = None
    context: str | None = None
    in_cluster: bool = False
    namespace: str | None = None
    """None: the in-cluster service account's namespace, else the kubeconfig
    context's, else "default"."""
    name: str | None = None
    """None: `lease_name(config)`, derived from what this daemon syncs."""
    lease_duration: float = 15.0
    """How long a follower waits, from the last change it saw, before taking over."""
    renew_deadline: float = 10.0
    """How long the leader keeps trying to renew before it stops acting as leader."""
    retry_period: float = 2.0
    """Between two tries: renewals by the leader, acquisitions by followers."""
    shards: int | None = None
    """None: one Lease, one leader syncs every target. N: targets are spread over N
    shards by a stable hash of their name, one Lease per shard (`<name>-<i>`), and
    each replica syncs the targets of the shards it holds (`daemon.shards`)."""


@dataclass(frozen=True, kw_only=True)
class DaemonConfig:
    repo: str
    branch: str = "main"
    path: str = "."
    data_dir: Path | None = None
    """Mirrors and history; None: $RECONCILER_DATA_DIR or the per-user default, as the CLI."""
    listen: str | None = "127.0.0.1:8080"
    """host:port for the status page, API, metrics and webhooks; None disables it."""
    public_url: str | None = None
    poll_interval: float = 30.0
    drift_interval: float = 300.0
    """Seconds between drift checks; 0 disables them."""
    stop_timeout: float = 25.0
    """Seconds a stop waits for the running sync to end its batch in flight; then the
    process exits 1 and the next start re-plans. Below Kubernetes' 30 s grace period."""
    self_heal: bool = False
    watch: bool = True
    """Watch the ref files of a local (path or file://) repository for new commits."""
    credentials: CredentialsConfig = field(default_factory=CredentialsConfig)
    reporters: tuple[ReporterConfig, ...] = (ReporterConfig(type="gitnotes"),)
    webhooks: WebhooksConfig = field(default_factory=WebhooksConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    pull_requests: PullRequestsConfig = field(default_factory=PullRequestsConfig)
    targets: tuple[str, ...] | None = None
    """The targets this daemon syncs; None means every target of the state repo."""
    leader_election: LeaderElectionConfig = field(default_factory=LeaderElectionConfig)
    history: HistorySettings = field(default_factory=HistorySettings)
    """Where the history lives: SQLite under data_dir, or a PostgreSQL URL."""
    log_format: str = "auto"
    log_level: str = "info"
    verify: VerifyPolicy | None = None
    """When set, a commit is applied (or planned) only if its signature verifies."""
    source: str = "<defaults>"
    """Where the configuration came from, for messages."""


_TOP_KEYS = (
    "repo", "branch", "path", "data_dir", "listen", "public_url", "poll_interval",
    "drift_interval", "stop_timeout", "self_heal", "watch", "credentials", "reporters",
    "webhooks", "http", "pull_requests", "targets", "leader_election", "log_format",
    "log_level", "history", "verify",
)
_HTTP_KEYS = ("request_deadline", "max_connections", "max_streams")
_VERIFY_KEYS = ("signatures", "allowed_signers", "keyring")
_CREDENTIAL_KEYS = ("token_file", "token_env", "username", "ssh_key", "known_hosts")
_WEBHOOK_KEYS = ("github_secret_env", "gitlab_secret_env", "gitea_secret_env")
_PR_KEYS = ("enabled", "refspecs", "keep")
_GITNOTES_KEYS = ("type", "push")
_LEADER_KEYS = ("enabled", "kubeconfig", "context", "in_cluster", "namespace", "name",
                "lease_duration", "renew_deadline", "retry_period", "shards")
# Kubernetes object names: a DNS-1123 subdomain (Lease names), a label (namespaces).
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def parse_duration(value: object, where: str) -> float:
    """Seconds from a duration (`reconciler.options`: `30s`, `1h30m`, `90`); never negative."""
    seconds = grammar.parse_duration(value)
    if seconds is None and grammar.parse_duration(str(value).lstrip("-")) is not None:
        raise ConfigError(f"{where}: a duration cannot be negative")
    if seconds is None:
        raise ConfigError(f"{where}: expected {grammar.DURATION_FORMS}, got {value!r}")
    return seconds


def parse_listen(value: object, where: str) -> str | None:
    """`host:port` with a numeric port, or null/off to disable the HTTP server."""
    if value is None or value is False or value == "off":
        return None
    text = str(value)
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{where}: expected host:port (e.g. 127.0.0.1:8080), got {text!r}")
    return text


def did_you_mean(word: str, known: Sequence[str]) -> str:
    return grammar.did_you_mean(word, known)


class _Reader:
    """Walks a round-trip YAML mapping, turning positions into `file:line`."""

    def __init__(self, source: str) -> None:
        self.source = source

    def where(self, node: Any, key: object = None) -> str:
        try:
            line = node.lc.key(key)[0] if key is not None else node.lc.line
        except (AttributeError, KeyError, TypeError):
            return self.source
        return f"{self.source}:{line + 1}"

    def mapping(self, node: Any, where: str, known: Sequence[str]) -> Mapping[str, Any]:
        if node is None:
            return {}
        if not isinstance(node, Mapping):
            raise ConfigError(f"{where}: expected a mapping")
        for key in node:
            if key not in known:
                hint = did_you_mean(str(key), known)
                raise ConfigError(f"{self.where(node, key)}: unknown key {key!r}{hint}")
        return node

    def string(self, node: Mapping[str, Any], key: str, default: str | None) -> str | None:
        value = node.get(key, default)
        if value is None:
            return None
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ConfigError(f"{self.where(node, key)}: {key} must be a string")
        return str(value)

    def boolean(self, node: Mapping[str, Any], key: str, default: bool) -> bool:
        value = node.get(key, default)
        if not isinstance(value, bool):
            raise ConfigError(f"{self.where(node, key)}: {key} must be true or false")
        return value

    def strings(self, node: Mapping[str, Any], key: str) -> tuple[str, ...] | None:
        value = node.get(key)
        if value is None:
            return None
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise ConfigError(f"{self.where(node, key)}: {key} must be a list of strings")
        if not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"{self.where(node, key)}: {key} must be a list of strings")
        return tuple(value)

    def choice(self, node: Mapping[str, Any], key: str, default: str,
               allowed: Sequence[str]) -> str:
        value = self.string(node, key, default) or default
        if value not in allowed:
            hint = did_you_mean(value, allowed)
            raise ConfigError(
                f"{self.where(node, key)}: {key} must be one of {', '.join(allowed)}{hint}"
            )
        return value


def _path(value: str | None, base: Path) -> Path | None:
    if value is None:
        return None
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _repo(value: str | None, base: Path) -> str | None:
    """A local path is made absolute against the config file; URLs are kept."""
    if value is None or "://" in value or re.match(r"^[^/]+@[^/:]+:", value):
        return value
    return str(_path(value, base))


def parse_config(text: str, *, source: str = "reconciler-daemon.yaml",
                 base_dir: Path = Path(".")) -> DaemonConfig:
    """Parse and check a daemon configuration; ConfigError names file:line."""
    try:
        data = YAML(typ="rt").load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{source}{line}: {problem}") from None
    r = _Reader(source)
    top = r.mapping(data, source, _TOP_KEYS)
    repo = _repo(r.string(top, "repo", None), base_dir)
    if not repo:
        raise ConfigError(f"{source}: repo is required (a URL or a local path)")
    return DaemonConfig(
        repo=repo,
        branch=r.string(top, "branch", "main") or "main",
        path=r.string(top, "path", ".") or ".",
        data_dir=_path(r.string(top, "data_dir", None), base_dir),
        listen=parse_listen(top.get("listen", "127.0.0.1:8080"), r.where(top, "listen")),
        public_url=_public_url(r, top),
        poll_interval=_interval(r, top, "poll_interval", 30.0, minimum=0.1),
        drift_interval=_interval(r, top, "drift_interval", 300.0, minimum=0.0),
        stop_timeout=_interval(r, top, "stop_timeout", 25.0, minimum=0.0),
        self_heal=r.boolean(top, "self_heal", False),
        watch=r.boolean(top, "watch", True),
        credentials=_credentials(r, top.get("credentials"), r.where(top, "credentials"),
                                 base_dir),
        reporters=_reporters(r, top),
        webhooks=_webhooks(r, top.get("webhooks"), r.where(top, "webhooks")),
        http=_http(r, top.get("http"), r.where(top, "http")),
        pull_requests=_pull_requests(r, top.get("pull_requests"),
                                     r.where(top, "pull_requests")),
        targets=r.strings(top, "targets"),
        leader_election=_leader_election(r, top.get("leader_election"),
                                         r.where(top, "leader_election"), base_dir),
        history=_history(r, top.get("history"), r.where(top, "history"), base_dir),
        log_format=r.choice(top, "log_format", "auto", LOG_FORMATS),
        log_level=r.choice(top, "log_level", "info", LOG_LEVELS),
        verify=_verify(r, top, base_dir),
        source=source,
    )


def _public_url(r: _Reader, top: Mapping[str, Any]) -> str | None:
    url = r.string(top, "public_url", None)
    if url is not None and not re.match(r"^https?://[^/]", url):
        raise ConfigError(f"{r.where(top, 'public_url')}: public_url must be an http(s) URL")
    return url.rstrip("/") if url else None


def _interval(r: _Reader, top: Mapping[str, Any], key: str, default: float,
              *, minimum: float) -> float:
    if key not in top:
        return default
    seconds = parse_duration(top[key], r.where(top, key))
    if seconds < minimum:
        raise ConfigError(f"{r.where(top, key)}: {key} must be at least {minimum:g}s")
    return seconds


def _verify(r: _Reader, top: Mapping[str, Any], base: Path) -> VerifyPolicy | None:
    if top.get("verify") is None:
        return None
    m = r.mapping(top["verify"], r.where(top, "verify"), _VERIFY_KEYS)
    where = r.where(m, "signatures") if "signatures" in m else r.where(top, "verify")
    return make_policy(m.get("signatures"), _path(r.string(m, "allowed_signers", None), base),
                       _path(r.string(m, "keyring", None), base), where)


def _credentials(r: _Reader, node: Any, where: str, base: Path) -> CredentialsConfig:
    m = r.mapping(node, where, _CREDENTIAL_KEYS)
    creds = CredentialsConfig(
        token_file=_path(r.string(m, "token_file", None), base),
        token_env=r.string(m, "token_env", None),
        username=r.string(m, "username", None),
        ssh_key=_path(r.string(m, "ssh_key", None), base),
        known_hosts=_path(r.string(m, "known_hosts", None), base),
    )
    if creds.token_file is not None and creds.token_env is not None:
        raise ConfigError(f"{where}: set token_file or token_env, not both")
    return creds


def _reporters(r: _Reader, top: Mapping[str, Any]) -> tuple[ReporterConfig, ...]:
    node = top.get("reporters")
    if node is None:
        return (ReporterConfig(type="gitnotes"),)
    if isinstance(node, str) or not isinstance(node, Sequence):
        raise ConfigError(f"{r.where(top, 'reporters')}: reporters must be a list")
    out: list[ReporterConfig] = []
    for index, item in enumerate(node):
        where = _item_where(r, node, index)
        if not isinstance(item, Mapping) or not isinstance(item.get("type"), str):
            raise ConfigError(f"{where}: a reporter needs a type ({', '.join(REPORTER_TYPES)})")
        kind = item["type"]
        if kind not in REPORTER_TYPES:
            hint = did_you_mean(kind, REPORTER_TYPES)
            raise ConfigError(f"{r.where(item, 'type')}: unknown reporter type {kind!r}{hint}")
        if kind == "gitnotes":
            r.mapping(item, where, _GITNOTES_KEYS)
            options: dict[str, Any] = {"push": r.boolean(item, "push", False)}
        else:
            options = {str(k): _plain(v) for k, v in item.items() if k != "type"}
        out.append(ReporterConfig(type=kind, options=options, location=where))
    return tuple(out)


def _item_where(r: _Reader, seq: Any, index: int) -> str:
    try:
        return f"{r.source}:{seq.lc.item(index)[0] + 1}"
    except (AttributeError, KeyError, TypeError, IndexError):
        return r.source


def _plain(value: Any) -> Any:
    """Round-trip YAML nodes as plain Python values, so configs compare and copy simply."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _webhooks(r: _Reader, node: Any, where: str) -> WebhooksConfig:
    m = r.mapping(node, where, _WEBHOOK_KEYS)
    return WebhooksConfig(**{k: r.string(m, k, None) for k in _WEBHOOK_KEYS})


def _http(r: _Reader, node: Any, where: str) -> HttpConfig:
    m = r.mapping(node, where, _HTTP_KEYS)
    default = HttpConfig()
    counts = {}
    for key in ("max_connections", "max_streams"):
        value = m.get(key, getattr(default, key))
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{r.where(m, key)}: {key} must be a whole number, 1 or more")
        counts[key] = value
    if counts["max_streams"] > counts["max_connections"]:
        raise ConfigError(f"{r.where(m, 'max_streams')}: max_streams must not exceed "
                          f"max_connections ({counts['max_connections']})")
    return HttpConfig(request_deadline=_interval(r, m, "request_deadline",
                                                 default.request_deadline, minimum=0.1),
                      **counts)


def _pull_requests(r: _Reader, node: Any, where: str) -> PullRequestsConfig:
    m = r.mapping(node, where, _PR_KEYS)
    refspecs = r.strings(m, "refspecs")
    default = PullRequestsConfig()
    keep = m.get("keep", default.keep)
    # bool is an int to Python, but `keep: true` is a mistake, not 1.
    if not isinstance(keep, int) or isinstance(keep, bool) or keep < 0:
        raise ConfigError(f"{r.where(m, 'keep')}: keep must be a whole number, 0 or more")
    return PullRequestsConfig(
        enabled=r.boolean(m, "enabled", True),
        refspecs=refspecs if refspecs is not None else default.refspecs,
        keep=keep,
    )


def _leader_election(r: _Reader, node: Any, where: str, base: Path) -> LeaderElectionConfig:
    m = r.mapping(node, where, _LEADER_KEYS)
    default = LeaderElectionConfig()
    durations = {key: _interval(r, m, key, getattr(default, key), minimum=0.001)
                 for key in ("lease_duration", "renew_deadline", "retry_period")}
    le = LeaderElectionConfig(
        enabled=r.boolean(m, "enabled", False),
        kubeconfig=_path(r.string(m, "kubeconfig", None), base),
        context=r.string(m, "context", None),
        in_cluster=r.boolean(m, "in_cluster", False),
        namespace=r.string(m, "namespace", None),
        name=r.string(m, "name", None),
        shards=_shards(r, m),
        **durations,
    )
    if le.in_cluster and (le.kubeconfig is not None or le.context is not None):
        raise ConfigError(f"{where}: set kubeconfig/context or in_cluster, not both")
    if le.namespace is not None and not _LABEL.match(le.namespace):
        raise ConfigError(f"{r.where(m, 'namespace')}: namespace must be a DNS label "
                          f"(lowercase letters, digits and '-'), got {le.namespace!r}")
    if le.name is not None and (len(le.name) > 253 or not _SUBDOMAIN.match(le.name)):
        raise ConfigError(f"{r.where(m, 'name')}: name must be a DNS subdomain "
                          f"(lowercase letters, digits, '-' and '.'), got {le.name!r}")
    # client-go's rules: a leader must give up (renew_deadline) before followers
    # may take over (lease_duration), and must get more than one try at renewing
    # in between (its jitter factor is 1.2). The Lease holds whole seconds.
    if le.lease_duration < 1:
        raise ConfigError(f"{r.where(m, 'lease_duration')}: lease_duration must be at least 1s")
    if le.renew_deadline >= le.lease_duration:
        raise ConfigError(f"{r.where(m, 'renew_deadline')}: renew_deadline must be shorter "
                          "than lease_duration")
    if le.renew_deadline <= 1.2 * le.retry_period:
        raise ConfigError(f"{r.where(m, 'retry_period')}: retry_period must be shorter than "
                          "renew_deadline / 1.2")
    return le


def _shards(r: _Reader, m: Mapping[str, Any]) -> int | None:
    count = m.get("shards")
    if count is None:
        return None
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 1000:
        raise ConfigError(f"{r.where(m, 'shards')}: shards must be a whole number "
                          "from 1 to 1000")
    return count


_HISTORY_KEYS = ("url", "password_file", "password_env", "pool_size", "timeout")


def _history(r: _Reader, node: Any, where: str, base: Path) -> HistorySettings:
    """`history: {url: postgresql://user@host:5432/db, password_file: ...}`; the
    password itself never in this file, so a URL that carries one is refused."""
    m = r.mapping(node, where, _HISTORY_KEYS)
    url = r.string(m, "url", None)
    if url is not None:
        _check_history_url(url, r.where(m, "url"))
    settings = HistorySettings(
        url=url,
        password_file=_path(r.string(m, "password_file", None), base),
        password_env=r.string(m, "password_env", None),
        pool_size=_history_pool(r, m),
        timeout=_interval(r, m, "timeout", HistorySettings().timeout, minimum=0.1),
    )
    if settings.password_file is not None and settings.password_env is not None:
        raise ConfigError(f"{where}: set password_file or password_env, not both")
    if url is None and (settings.password_file or settings.password_env):
        raise ConfigError(f"{where}: a password needs a url (postgresql://...)")
    return settings


def _check_history_url(url: str, where: str) -> None:
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in SCHEMES:
        raise ConfigError(f"{where}: url must be a postgresql:// URL, got {scheme or url!r}")
    authority = rest.split("/", 1)[0].split("?", 1)[0]
    userinfo = authority.rpartition("@")[0]
    query = rest.partition("?")[2]
    if ":" in userinfo or re.search(r"(^|&)password=", query):
        raise ConfigError(f"{where}: url must not contain a password; "
                          "name a password_file or password_env instead")


def _history_pool(r: _Reader, m: Mapping[str, Any]) -> int:
    size = m.get("pool_size", HistorySettings().pool_size)
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ConfigError(f"{r.where(m, 'pool_size')}: pool_size must be a whole number, "
                          "1 or more")
    return size


def lease_name(config: DaemonConfig) -> str:
    """The Lease this daemon competes for: the configured name, else one derived from
    what it syncs, so replicas that shard different targets (or roots, or branches)
    of one repository elect a leader each instead of idling behind one another."""
    le = config.leader_election
    if le.name:
        return le.name
    scope = "\0".join([config.repo, config.branch, config.path,
                        ",".join(sorted(config.targets)) if config.targets else "*"])
    return "reconciler-" + hashlib.sha256(scope.encode()).hexdigest()[:12]


def lease_seconds(le: LeaderElectionConfig) -> int:
    """`spec.leaseDurationSeconds`: whole seconds, never shorter than configured."""
    return max(1, math.ceil(le.lease_duration))


def with_overrides(config: DaemonConfig, overrides: Mapping[str, Any]) -> DaemonConfig:
    """Apply command-line flags (already named like config keys) over a config.

    None means "not given". Durations and `listen` are checked as in the file,
    with the flag named in the message.
    """
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        if value is None:
            continue
        flag = "--" + key.replace("_", "-")
        if key in ("poll_interval", "drift_interval", "stop_timeout"):
            value = parse_duration(value, flag)
            if key == "poll_interval" and value < 0.1:
                raise ConfigError(f"{flag}: poll_interval must be at least 0.1s")
        elif key == "listen":
            value = parse_listen(value, flag)
        elif key == "data_dir":
            value = Path(value).expanduser().absolute()
        elif key == "repo":
            value = _repo(str(value), Path.cwd())
        elif key == "targets":
            value = tuple(value)
        changes[key] = value
    return replace(config, **changes)


def missing_secrets(config: DaemonConfig, environ: Mapping[str, str]) -> list[str]:
    """Environment variables the config names that are not set, as messages."""
    names = [config.credentials.token_env, config.webhooks.github_secret_env,
             config.webhooks.gitlab_secret_env, config.webhooks.gitea_secret_env]
    names += [str(rc.options["token_env"]) for rc in config.reporters
              if rc.options.get("token_env")]
    names.append(config.history.password_env)
    return [f"{config.source}: environment variable {n} is not set"
            for n in names if n and not environ.get(n)]
