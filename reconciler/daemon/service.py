"""The daemon's wiring and lifecycle: config in, a running loop around the Engine out.

`Daemon` builds the Engine, the reporters, the work queue and the triggers,
runs one worker thread, and stops cleanly. `run(config)` is what
`reconciler run` calls: it installs signal handlers and blocks until SIGTERM
or SIGINT.

Lifecycle invariants:
- Start: the history marks deploys left running by a dead process as
  interrupted (History does this at open); the failed-commit memory is seeded
  from the newest deploy; the first job fetches and re-plans the head from
  live state, so a restart finishes whatever a killed daemon left half done.
- Stop (first SIGTERM/SIGINT): triggers stop first, so no new job starts;
  then the engine is asked to stop (`Engine.request_stop`): the running sync
  finishes the batch in flight (no apply is cut in half, so no file is half
  written), abandons a health gate at its next poll, starts nothing new and
  ends "interrupted" (status `pending`, "interrupted by shutdown; resumes on
  restart"); then the process exits 0. A rollout can outlast Kubernetes'
  grace period by minutes, so waiting for it to finish would end as a
  SIGKILL. If the worker has not ended within `stop_timeout` (a probe or an
  apply that hangs), or at a second signal, the process exits at once with
  status 1: still safe, because the next start re-plans from live state.
- `trigger()` is thread-safe and never blocks: webhooks, timers and the file
  watch only queue a request.
- Pull-request plans (`pull_requests`) run on a second thread
  (`daemon.plans.PlanWorker`), so a plan never waits for a rollout and a
  rollout never waits for a plan; a plan only reads, so it needs no target
  lock. `on_webhook(trigger)` is the one call the web server makes for a
  verified webhook.
- The HTTP server (status page, API, metrics, webhooks) lives in
  `reconciler.web.server`, imported only when `listen` is set;
  `start(daemon, listen)` takes the daemon as a `reconciler.web.seam.DaemonView`
  and is called before the worker starts (an address in use stops the start
  before any job runs); the server it returns is stopped before the worker.
- Leader election (`leader_election.enabled`, `daemon.leader`): deploys, drift
  checks and pull-request plans run only while this replica holds the Lease;
  the HTTP server runs on every replica, and a webhook on a follower is
  accepted and dropped (the leader fetches on its own poll). Becoming leader
  triggers a fetch and a plan scan. Losing leadership interrupts the running
  rollout (`Engine.interrupt`): it ends after its batch in flight, recorded
  "interrupted", so it overlaps a new leader's rollout by one batch at most;
  the engine still syncs in full once this replica leads again. On stop, the
  Lease is released only after the running job ended, so no other replica
  starts a rollout beside it.
- Shards (`leader_election.shards: N`, `daemon.shards`): one Lease per shard;
  one `Worker` per shard, each with its own failed-commit memory, syncing only
  its shard's targets, run one after another on the worker thread for the
  shards this replica holds. Taking a shard starts a new fence tenure
  (`daemon.fence`) and seeds that shard's memory from the shared history
  (deploys of its targets), so a commit that failed on the replica that held
  it before is not retried. Both are done off the election thread (it must
  renew the Lease meanwhile), asked again until the history answers, and the
  shard deploys nothing before. Every deploy of a shard writes through its fence:
  once another replica took a target, this one records and applies nothing
  more. Pull-request plans run on the holder of shard 0 only.
"""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import Counter

from reconciler import pulls
from reconciler.daemon import logging as daemon_logging
from reconciler.daemon import scheduler, signals, statuses
from reconciler.daemon.config import DaemonConfig, ReporterConfig, missing_secrets
from reconciler.daemon.fence import ShardFence
from reconciler.daemon.leader import LeaderElector, LeaderState, default_identity, open_elector
from reconciler.daemon.logging import fields
from reconciler.daemon.plans import PlanState, PlanWorker
from reconciler.daemon.shards import ShardSet, in_shard, shard_of
from reconciler.daemon.triggers import PatternWatcher, RefWatcher, Timers, local_git_dir
from reconciler.daemon.worker import Worker, WorkerState
from reconciler.engine import Engine, EngineSettings
from reconciler.errors import ConfigError, HistoryError, ReconcilerError
from reconciler.events import Event, EventKind
from reconciler.history import DeployRecord, DriftCheck
from reconciler.history.records import RelayedRequest
from reconciler.redact import LogFilter
from reconciler.reporters import Reporter
from reconciler.reporters import build as build_reporter
from reconciler.source import Credentials
from reconciler.source.local import local_path
from reconciler.webhooks import Trigger, TriggerKind

if TYPE_CHECKING:
    from reconciler.web.server import WebServer

log = logging.getLogger("reconciler.daemon")

LEADERSHIP_LOST = "loss of leadership"
"""Completes an interrupted deploy's message: "interrupted by loss of leadership: ..."."""

TRIGGERS = Counter("reconciler_daemon_triggers_total", "Requests to look for a new commit",
                   ["reason"])


def engine_settings(config: DaemonConfig, data_dir: Path) -> EngineSettings:
    creds = config.credentials
    credentials = None
    if creds.token_file or creds.token_env or creds.ssh_key or creds.known_hosts:
        extra = {"username": creds.username} if creds.username else {}
        credentials = Credentials(token_file=creds.token_file, token_env=creds.token_env,
                                  ssh_key=creds.ssh_key, known_hosts=creds.known_hosts, **extra)
    return EngineSettings(
        repo=config.repo, rev=f"refs/heads/{config.branch}", path=config.path,
        data_dir=data_dir, credentials=credentials, targets=config.targets or (),
        history=config.history, verify=config.verify,
    )


def make_reporter(rc: ReporterConfig, engine: Engine) -> Reporter:
    """The reporter of one config entry (`reconciler.reporters.build`, the one factory), its
    errors naming the entry's file and line. Only gitnotes needs the engine."""
    try:
        if rc.type == "gitnotes":
            return build_reporter(rc, store=engine.mirror,
                                  local=local_path(engine.mirror.url) is not None)
        return build_reporter(rc)
    except ConfigError as err:
        # The reporter modules check their own keys but know no file; name the entry's line.
        raise ConfigError(f"{rc.location}: {err}" if rc.location else str(err)) from None


@dataclass(frozen=True, kw_only=True)
class Snapshot:
    """The daemon's state for the status page and `/readyz`."""

    repo: str
    branch: str
    ready: bool
    stopping: bool
    unready: str | None = None
    """Why the daemon is not ready (`/readyz` says it), None when it is."""
    worker: WorkerState
    plans: PlanState | None = None
    """None when pull-request plans are off."""
    leader: LeaderState | None = None
    """Whether this replica leads and who does; None when leader election is off.
    With shards: the first shard held, else shard 0 (the page header's one line)."""
    shards: tuple[LeaderState, ...] = ()
    """With shards: every shard's Lease, by index; () without shards."""


class Daemon:
    def __init__(self, config: DaemonConfig, data_dir: Path) -> None:
        self.config = config
        self.data_dir = data_dir
        self.engine = Engine(engine_settings(config, data_dir), long_running=True)
        self.history = self.engine.history
        self.events = self.engine.events
        reporters = [make_reporter(rc, self.engine) for rc in config.reporters]
        self.publisher = statuses.Publisher(reporters, config.public_url,
                                            redact=self.events.secrets.redact)
        self.progress = statuses.Progress(self.publisher)
        self.engine.subscribe(self.progress)
        self.queue = scheduler.WorkQueue()
        self.identity = default_identity()
        self.shards: ShardSet | None = None
        self._running_shard: int | None = None
        self._seeded: set[int] = set()
        """Shards held whose memory has been read from the shared history: only
        these deploy (a job between taking a Lease and reading it would decide
        with the memory of before, and deploy again what the last holder did)."""
        self._tenures: dict[int, int] = {}
        """Shard -> how many times its Lease was taken or lost here: a take that
        a later loss or take overtook seeds nothing."""
        self._tenure_lock = threading.Lock()
        self.shard_count = (config.leader_election.shards or 0
                            if config.leader_election.enabled else 0)
        """0: no shards (one leader, or none); N: targets spread over N shards."""
        self.fences = [ShardFence(self.history, i, self.identity,
                                  lambda i=i: self._holds(i),  # type: ignore[misc]
                                  shards=self.shard_count)
                       for i in range(self.shard_count)]
        self.workers = [self._shard_worker(i) for i in range(self.shard_count)]
        self.worker = self.workers[0] if self.workers else Worker(
            self.engine, self.publisher, self.progress, self.queue,
            self_heal=config.self_heal, may_deploy=self.is_leader)
        if config.leader_election.enabled:
            self.engine.subscribe(self._deploy_started)
        if self.shard_count:
            deploys = self.history.deploys(limit=200)
            for index, worker in enumerate(self.workers):
                worker.state.memory = scheduler.seed(self._of_shard(deploys, index))
        else:
            self.worker.state.memory = scheduler.seed(self.history.deploys(limit=200))
        # The page and the API must not forget a drifted target across a restart.
        self.worker.restore_drift(self._latest_drift())
        self.plans = self._plan_worker()
        self._timers = Timers()
        self._watcher: RefWatcher | None = None
        self._pr_watcher: PatternWatcher | None = None
        self._web: WebServer | None = None
        self.elector: LeaderElector | None = None
        self._thread = threading.Thread(target=self._loop, name="reconciler-worker",
                                        daemon=True)
        self._stopping = threading.Event()

    # --- shards -----------------------------------------------------------------

    def _shard_worker(self, index: int) -> Worker:
        count = self.shard_count
        return Worker(
            self.engine, self.publisher, self.progress, self.queue,
            self_heal=self.config.self_heal,
            may_deploy=lambda: self._holds(index) and index in self._seeded,
            scope=lambda names: in_shard(names, index, count),
            claim=lambda names: self.fences[index].claim(names, self.engine.interrupt))

    def _of_shard(self, deploys: list[DeployRecord], index: int) -> list[DeployRecord]:
        """The deploys that count for shard `index`: of its targets, or of none
        named (an invalid commit, or recorded before deploys named targets)."""
        return [d for d in deploys if not d.targets
                or any(shard_of(t, self.shard_count) == index for t in d.targets)]

    def _holds(self, index: int) -> bool:
        return self.shards is not None and self.shards.holds(index)

    def _took_shard(self, index: int) -> None:
        """On the shard's election thread, which must go on renewing the Lease:
        the history may take up to its timeout to answer (or longer, while a
        paused holder's locks are ended), so the fences and the memory are
        taken on a thread of their own."""
        with self._tenure_lock:
            tenure = self._tenures[index] = self._tenures.get(index, 0) + 1
        threading.Thread(target=self._take_shard, args=(index, tenure),
                         name=f"shard-{index}-take", daemon=True).start()

    def _current(self, index: int, tenure: int) -> bool:
        return self._tenures.get(index) == tenure and not self._stopping.is_set()

    def _take_shard(self, index: int, tenure: int) -> None:
        """Take the shard's fences, then read its memory from the shared history;
        asked again every retry period until both are done or the tenure ended.
        Until then the shard deploys nothing: its memory would be of before."""
        pause = self.config.leader_election.retry_period
        while self._current(index, tenure):
            try:
                self.fences[index].new_tenure()
                deploys = self._of_shard(self.history.deploys(limit=200), index)
            except HistoryError as err:
                log.error("took a shard but cannot take its fences or read its history: "
                          "it deploys once they are read", extra=fields(
                              shard=index, error=str(err)))
                self._stopping.wait(pause)
                continue
            memory = scheduler.seed(deploys)
            with self._tenure_lock:
                if not self._current(index, tenure):
                    return
                self.workers[index].state.memory = memory
                self._seeded.add(index)
            log.info("took shard", extra=fields(
                shard=index, deployed=memory.deployed, failed=sorted(memory.failed)))
            self.trigger("leader")
            if index == 0:
                self.plan_pull_requests("leader")
            return

    def _lost_shard(self, index: int) -> None:
        with self._tenure_lock:
            self._tenures[index] = self._tenures.get(index, 0) + 1
            self._seeded.discard(index)
        log.warning("lost shard", extra=fields(shard=index))
        if self._running_shard == index and self.engine.interrupt(LEADERSHIP_LOST):
            log.warning("shard lost during a rollout: it stops after its batch in flight",
                        extra=fields(shard=index, sha=self.workers[index].state.running))

    def _relay(self, trigger: Trigger) -> None:
        """Shards: hand a webhook to the replicas holding the other shards."""
        if trigger.kind is TriggerKind.PUSH and trigger.ref == self._tracked_ref:
            kind = "sync"
        elif trigger.kind is TriggerKind.PULL_REQUEST or self._covers(trigger.ref):
            kind = "plan"
        else:
            return
        try:
            self.history.relay(kind, trigger.ref, trigger.reason, self.identity)
        except HistoryError as err:
            log.error("webhook not relayed to the other replicas: they act on their "
                      "next poll", extra=fields(ref=trigger.ref, error=str(err)))
            return
        log.info("webhook relayed to the replicas holding the shards",
                 extra=fields(ref=trigger.ref, reason=trigger.reason, kind=kind))

    def _relayed(self, requests: list[RelayedRequest]) -> None:
        """Requests other replicas relayed (on the heartbeat thread; never blocks)."""
        for request in requests:
            log.info("relayed webhook", extra=fields(
                kind=request.kind, ref=request.ref, sender=request.sender))
            if request.kind == "sync" and self.is_leader():
                self.trigger(f"relayed-{request.reason}")
            elif request.kind == "plan":
                self.plan_pull_requests(f"relayed-{request.reason}", request.ref)

    def _address(self) -> str:
        return self.config.public_url or self.web_url or ""

    # --- the public surface (web server, tests) -----------------------------

    def trigger(self, reason: str, ref: str | None = None, *, explicit: bool = False) -> None:
        """Ask the daemon to fetch and deploy the branch head (or `ref`). Thread-safe."""
        if self._stopping.is_set():
            return
        TRIGGERS.labels(reason=reason).inc()
        self.queue.put(scheduler.Request(reason=reason, ref=ref, explicit=explicit))

    def plan_pull_requests(self, reason: str, ref: str | None = None,
                           sha: str | None = None) -> None:
        """Fetch and plan pull-request heads now: the one `ref` a webhook named, or
        every head matching `pull_requests.refspecs`. Thread-safe, never blocks.

        `sha` is only logged: the daemon plans what the ref points at after
        its own fetch, never a commit a payload names."""
        if self.plans is None or self._stopping.is_set() or not self.is_leader():
            return
        if self.shard_count and not self._holds(0):
            return  # one replica plans: the holder of shard 0
        TRIGGERS.labels(reason=reason).inc()
        if ref is None:
            self.plans.scan(reason)
        else:
            log.info("pull request trigger", extra=fields(reason=reason, ref=ref, sha=sha))
            self.plans.plan_ref(reason, ref)

    def on_webhook(self, trigger: Trigger) -> None:
        """What a verified webhook does, in one call for the web server:
        - a push to the tracked branch: fetch and deploy its head (coalesced);
        - a pull request, or a push to a branch that `pull_requests.refspecs`
          covers (e.g. refs/heads/pr/*): fetch and plan that head at once;
        - any other push: nothing.
        Never deploys the ref a webhook names; thread-safe, never blocks.
        On a follower (leader election): nothing; the leader's poll finds the commit.
        With shards: also relayed to the other replicas through the history
        (`daemon.shards`), since the commit may concern shards held elsewhere."""
        if self.shard_count:
            self._relay(trigger)
            if not self.is_leader():
                return  # relayed: the holders act on it
        if not self.is_leader():
            log.info("webhook on a follower: the leader acts on its next poll",
                     extra=fields(ref=trigger.ref, reason=trigger.reason))
            return
        if trigger.kind is TriggerKind.PUSH and trigger.ref == self._tracked_ref:
            self.trigger(trigger.reason)
        elif trigger.kind is TriggerKind.PULL_REQUEST or self._covers(trigger.ref):
            self.plan_pull_requests(trigger.reason, trigger.ref, trigger.sha)
        else:
            log.debug("webhook ignored: not the tracked branch",
                      extra=fields(ref=trigger.ref, reason=trigger.reason))

    @property
    def _tracked_ref(self) -> str:
        return f"refs/heads/{self.config.branch}"

    def _covers(self, ref: str) -> bool:
        return (self.plans is not None and ref != self._tracked_ref
                and pulls.match_ref(ref, self.plans.planner.patterns) is not None)

    def _latest_drift(self) -> dict[str, DriftCheck]:
        latest = self.history.latest_drift()
        if not self.config.targets:
            return latest
        # Another daemon on this data_dir may check other targets; show only ours.
        return {t: c for t, c in latest.items() if t in self.config.targets}

    def _plan_worker(self) -> PlanWorker | None:
        settings = self.config.pull_requests
        if not settings.enabled or not settings.refspecs:
            return None
        planner = pulls.PullRequestPlanner(
            engine=self.engine, reporters=self.publisher.reporters,
            patterns=settings.refspecs, exclude=(self._tracked_ref,),
            public_url=self.config.public_url, keep=settings.keep)
        return PlanWorker(planner)

    def _poll(self) -> None:
        self.trigger("poll")
        self.plan_pull_requests("poll")

    def check_drift(self) -> None:
        if not self._stopping.is_set():
            self.queue.put_drift()

    @property
    def web_url(self) -> str | None:
        """Where the HTTP server listens (after start), e.g. when `listen` asked for port 0."""
        return self._web.url if self._web is not None else None

    def unready_reason(self) -> str | None:
        """Why this daemon cannot deploy the branch now, or None: it is ready.

        Not ready until the first fetch succeeded, and again whenever the mirror
        is gone or damaged: then a fetch is asked for at once (it clones the
        mirror again) and the daemon is ready once that fetch succeeded. A
        follower never fetches, yet serves its page: it is ready (a
        Deployment's rolling update waits for every replica). With shards the
        workers share one mirror, so a fetch by any of them counts: a replica
        that takes a shard from another stays ready while that shard's first
        job fetches."""
        if not self.is_leader():
            return None
        state = self._acting_worker().state
        if not any(w.state.fetched for w in self.workers or [self.worker]):
            return ("starting: no fetch has succeeded yet"
                    + (f" ({state.fetch_error})" if state.fetch_error else ""))
        problem = self.engine.mirror.damage(self._tracked_ref)
        if problem is None:
            return None
        self.trigger("mirror-lost")
        return f"mirror lost ({problem}): cloning it again" + (
            f"; last fetch: {state.fetch_error}" if state.fetch_error else "")

    def snapshot(self) -> Snapshot:
        unready = self.unready_reason()
        return Snapshot(repo=self.engine.mirror.display_url, branch=self.config.branch,
                        ready=unready is None, unready=unready,
                        stopping=self._stopping.is_set(), worker=self.worker.state,
                        plans=self.plans.state if self.plans is not None else None,
                        leader=self._leader_state(),
                        shards=tuple(self.shards.states()) if self.shards is not None else ())

    def _acting_worker(self) -> Worker:
        """The worker whose fetches say whether this replica is ready: with shards,
        the first shard held (each shard's worker fetches for itself)."""
        held = self.shards.held() if self.shards is not None else []
        return self.workers[held[0]] if held else self.worker

    def _leader_state(self) -> LeaderState | None:
        """With shards: the Lease of the first shard held, else of shard 0."""
        if self.elector is not None:
            return self.elector.state()
        if self.shards is None:
            return None
        held = self.shards.held()
        return self.shards.states()[held[0] if held else 0]

    def is_leader(self) -> bool:
        """True when this replica may deploy: it holds the Lease (with shards: one of
        them at least), or election is off."""
        if not self.config.leader_election.enabled:
            return True
        if self.shard_count:
            return self.shards is not None and bool(self.shards.held())
        return self.elector is not None and self.elector.is_leader()

    def _started_leading(self) -> None:
        self.trigger("leader")
        self.plan_pull_requests("leader")

    def _stopped_leading(self) -> None:
        # The jobs check is_leader() before they start, so no new work begins.
        # A rollout already running is cut short after its batch in flight: the
        # new leader may start its own as soon as it holds the Lease, and two
        # replicas applying at once must not last longer than that one batch.
        # interrupt(), not request_stop(): this replica may lead again later.
        if self.engine.interrupt(LEADERSHIP_LOST):
            log.warning("leadership lost during a rollout: it stops after its batch "
                        "in flight", extra=fields(sha=self.worker.state.running))

    def _deploy_started(self, event: Event) -> None:
        # Leadership lost between the worker's last check and the sync's start
        # would find no sync to interrupt, and the sync would then run in full.
        # The sync exists by now (it emits this event), so interrupt it here.
        if event.kind is not EventKind.DEPLOY_STARTED:
            return
        shard = self._running_shard
        if not self.is_leader() or (shard is not None and not self._holds(shard)):
            self.engine.interrupt(LEADERSHIP_LOST)

    # --- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        """Start everything; raises ReconcilerError, before any job runs, when the
        HTTP server cannot listen."""
        # The listener first: a port in use must stop the daemon before a
        # rollout starts, not kill the process in the middle of one.
        self._start_web()
        if self.shard_count:
            self.shards = ShardSet(self.config, self.history, identity=self.identity,
                                   on_started=self._took_shard, on_stopped=self._lost_shard,
                                   busy=lambda i: self._running_shard == i,
                                   address=self._address, on_requests=self._relayed)
            self.shards.start()
        elif self.config.leader_election.enabled:
            # Before the worker: its first job must already see a follower as one.
            self.elector = open_elector(self.config, on_started=self._started_leading,
                                        on_stopped=self._stopped_leading)
            self.elector.start()
        self._thread.start()
        self.trigger("start")
        if self.plans is not None:
            self.plans.start()
            self.plan_pull_requests("start")
        self._timers.every(self.config.poll_interval, "poll", self._poll)
        self._timers.every(self.config.drift_interval, "drift", self.check_drift)
        self._timers.start()
        git_dir = local_git_dir(self.config.repo) if self.config.watch else None
        if git_dir is not None:
            self._watcher = RefWatcher(git_dir, self.config.branch,
                                       lambda: self.trigger("file-watch"))
            self._watcher.start()
        if git_dir is not None and self.plans is not None:
            patterns = pulls.remote_patterns(self.plans.planner.patterns)
            self._pr_watcher = PatternWatcher(
                git_dir, patterns, lambda: self.plan_pull_requests("file-watch"))
            self._pr_watcher.start()
        log.info("daemon started", extra=fields(
            repo=self.engine.mirror.display_url, branch=self.config.branch,
            targets=list(self.config.targets or ()) or "all",
            poll_interval=self.config.poll_interval, watch=git_dir is not None,
            pull_requests=list(self.plans.planner.patterns) if self.plans else "off"))

    def _start_web(self) -> None:
        if self.config.listen is None:
            return
        # Imported here: a daemon without `listen` never loads the web. The daemon
        # is the server's `DaemonView` (reconciler.web.seam), which mypy checks here.
        from reconciler.web import server

        try:
            self._web = server.start(self, self.config.listen)
        except OSError as err:
            raise ReconcilerError(
                f"cannot listen on {self.config.listen}: {err.strerror or err}") from None

    def stop(self, timeout: float | None = None) -> bool:
        """Stop triggers, ask the running job to stop after its batch in flight, stop
        the worker. True when everything stopped within `timeout`."""
        self._stopping.set()
        self._timers.stop()
        for watcher in (self._watcher, self._pr_watcher):
            if watcher is not None:
                watcher.stop()
        if self._web is not None:
            self._web.stop()
        self.queue.close()
        self.engine.request_stop()
        deadline = None if timeout is None else time.monotonic() + timeout
        # Plans only read: stop them first so a rollout is the only thing left.
        plans_done = self.plans is None or self.plans.stop(_left(deadline))
        if self._thread.is_alive():
            self._thread.join(_left(deadline))
        if self.elector is not None and not self._thread.is_alive():
            # Hand the Lease over only once no rollout of ours runs. While one still
            # runs, keep renewing: the Lease expires lease_duration after the process.
            self.elector.stop(release=True, timeout=_left(deadline))
        if self.shards is not None and not self._thread.is_alive():
            self.shards.stop(release=True, timeout=_left(deadline))
        done = not self._thread.is_alive() and plans_done
        if done:
            self.engine.close()
        log.info("daemon stopped" if done else "daemon stop timed out")
        return done

    def _loop(self) -> None:
        while True:
            job = self.queue.get()
            if job is None:
                return
            try:
                if not self.is_leader():
                    # A follower drops the job: the leader does the work, and
                    # becoming leader queues a fresh request.
                    log.debug("not the leader: job dropped")
                elif self.shards is not None:
                    self._shard_jobs(job)
                elif job.request is not None:
                    self.worker.sync_job(job.request)
                else:
                    self.worker.drift_job()
            except Exception:
                # The loop must outlive any bug in one job; the next trigger retries.
                log.exception("job failed")
            finally:
                self.queue.done()


    def _shard_jobs(self, job: scheduler.Job) -> None:
        """The job for each shard held, one after another (each its own deploy)."""
        assert self.shards is not None
        for index in self.shards.held():
            if self._stopping.is_set():
                return
            self._running_shard = index
            try:
                if job.request is not None:
                    self.workers[index].sync_job(job.request)
                else:
                    self.workers[index].drift_job()
            except Exception:
                log.exception("job failed", extra=fields(shard=index))
            finally:
                self._running_shard = None


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def run(config: DaemonConfig, data_dir: Path) -> int:
    """Run until SIGTERM/SIGINT; 0 after a clean stop. Raises ConfigError early.

    A signal that came before this call (`daemon.signals.install()` catches
    them from the process's start) or while the daemon is being built stops
    it before anything starts, as cleanly as a later one."""
    handler = daemon_logging.configure(config.log_format, config.log_level)
    try:
        stop = threading.Event()
        _install_signals(stop)
        problems = missing_secrets(config, os.environ)
        if problems:
            raise ConfigError(problems[0])
        daemon = _open(config, data_dir)
        handler.addFilter(LogFilter(daemon.events.secrets))
        if signals.received() is not None:
            stop.wait(5.0)  # the callback's thread logs the signal first
            daemon.stop(timeout=config.stop_timeout)
            return 0
        try:
            daemon.start()
        except ReconcilerError:
            daemon.stop(timeout=10)
            raise
        while not stop.wait(1.0):
            pass
        log.info("stopping: the running job stops after its batch in flight",
                 extra=fields(stop_timeout=config.stop_timeout))
        if not daemon.stop(config.stop_timeout):
            log.error("the running job did not stop in time: exiting; "
                      "the next start re-plans from live state",
                      extra=fields(stop_timeout=config.stop_timeout))
            logging.shutdown()
            # Not a return: the interpreter would join the rollout's pool
            # threads at exit, and so wait for the very job that overran.
            os._exit(1)
        return 0
    finally:
        daemon_logging.unconfigure(handler)


def _open(config: DaemonConfig, data_dir: Path) -> Daemon:
    """The daemon over `data_dir`; an unusable directory is one line, not a traceback."""
    try:
        return Daemon(config, data_dir)
    except HistoryError:
        raise  # it names the history file or server already
    except (OSError, sqlite3.Error) as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise ReconcilerError(f"cannot use data directory {data_dir}: {reason}") from None


def _install_signals(stop: threading.Event) -> None:
    def first(signum: int) -> None:
        log.info("signal received", extra=fields(signal=signal.Signals(signum).name))
        stop.set()

    def second() -> None:
        log.warning("second signal: exiting now; the next start re-plans from live state")
        logging.shutdown()

    signals.on_stop(first, on_second=second)


def wait_idle(daemon: Daemon, timeout: float) -> bool:
    """For tests and benches: wait until the queue is empty and nothing runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon.queue.idle():
            return True
        time.sleep(0.02)
    return False
