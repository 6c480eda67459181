"""`greenops run`: one reconcile per policy on an interval, until SIGTERM. The only APScheduler import.

A single-thread executor runs every pass: passes share one clone of the GitOps repository, so they
never overlap, and never two of one policy. A discovery job reloads the policy set from Git every
interval and keeps one job per policy (added and removed as policies come and go); without
``--policy`` it also proposes removing what greenops generated for deleted policies and closes their
stale merge requests (the last step of a full pass, ``prune_pass``). Each policy job
runs at the interval with jitter; after a transient failure the next run comes sooner, backing off
exponentially up to the interval. On SIGTERM no new pass starts, the running one finishes (a push is
never cut in half) and the process exits 0.
"""

import logging
import signal
import threading
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from controller.errors import StalledError, TransientError
from controller.policy.durations import format_duration
from controller.reconcile import Outcome, Settings, policy_units, prune_pass, reconcile, unknown_policy
from controller.runtime.health import HealthServer
from controller.runtime.metrics import Metrics

log = logging.getLogger("greenops.run")
logging.getLogger("apscheduler").setLevel(logging.WARNING)  # a line per job run is noise; ours say what happened
DISCOVERY = "discover-policies"


@dataclass(frozen=True)
class RunSettings:
    reconcile: Settings
    interval: timedelta
    jitter: timedelta
    retry_after: timedelta  # the first retry after a transient failure; doubles up to the interval
    host: str
    port: int


class Controller:
    def __init__(self, settings: RunSettings, metrics: Metrics) -> None:
        self.settings, self.metrics = settings, metrics
        self.scheduler = BackgroundScheduler(executors={"default": ThreadPoolExecutor(1)}, timezone=UTC,
                                             job_defaults={"coalesce": True, "max_instances": 1,
                                                           "misfire_grace_time": None})
        self.failures: dict[str, int] = {}  # transient failures in a row, by unit (discovery included)
        self.waiting: set[str] = set()  # units without a first pass yet
        self.discovered = False
        self.stopping = threading.Event()
        self.busy = threading.Lock()  # held by the running job: stop() waits on it, not on the scheduler's lock
        self.opened = 0  # new merge requests in this round (since the last discovery)

    @property
    def ready(self) -> bool:
        return self.discovered and not self.waiting and not self.stopping.is_set()

    @property
    def alive(self) -> bool:
        return bool(self.scheduler.running) and not self.stopping.is_set()

    def start(self) -> None:
        self.scheduler.start()
        self.scheduler.add_job(self.discover, IntervalTrigger(seconds=self.settings.interval.total_seconds()),
                               id=DISCOVERY, next_run_time=datetime.now(UTC))

    def stop(self) -> None:
        """No new pass starts; the running one finishes. The scheduler is shut down only afterwards: its own
        wait holds a lock that a finishing job may need (to reschedule itself), which would deadlock."""
        self.stopping.set()
        self.scheduler.pause()
        with self.busy:
            self.scheduler.shutdown(wait=False)

    def discover(self) -> None:
        with self.busy:
            if not self.stopping.is_set():
                self._discover()

    def _discover(self) -> None:
        try:
            units, problems = policy_units(self.settings.reconcile)
        except (StalledError, TransientError) as err:  # keep the known jobs; try again soon
            log.warning("cannot read the policies: %s", err)
            self._retry_sooner(DISCOVERY, DISCOVERY, "reading the policies")
            return
        self.failures.pop(DISCOVERY, None)
        self.opened = 0
        for problem in problems:
            log.warning("invalid policy file: %s", problem)
        only = set(self.settings.reconcile.only)
        self._report_unknown(only, {member for members in units.values() for member in members})
        units = {name: members for name, members in units.items() if not only or only & set(members)}
        jobs = {job.id.removeprefix("unit:"): job for job in self.scheduler.get_jobs() if job.id.startswith("unit:")}
        for name, members in units.items():
            if name in jobs and tuple(jobs[name].args[1]) == members:
                continue
            if name in jobs:
                jobs[name].remove()
            self.waiting.add(name)
            self.scheduler.add_job(self.reconcile_unit, self._trigger(), id=f"unit:{name}", args=[name, members],
                                   next_run_time=datetime.now(UTC))
        for name in sorted(set(jobs) - set(units)):
            jobs[name].remove()
            self.waiting.discard(name)
            self.failures.pop(name, None)
            log.info("no longer in the repository; not reconciled any more", extra={"policy": name})
        # policies deleted, or moved out of a group into a unit of their own name, keep no stale gauges
        known = {member for members in units.values() for member in members}
        for member in sorted({m for job in jobs.values() for m in job.args[1]} - known):
            self.metrics.forget(member)
        if not only:
            self._prune()
        self.discovered = True

    def _prune(self) -> None:
        """Deleted policies and stale merge requests, first in each round: new removal requests count against
        the round's --max-mrs-per-run like the policies' new requests."""
        outcomes = prune_pass(self.settings.reconcile, push=True)
        for outcome in outcomes:
            self._log(outcome.policy, outcome)
        self.opened += len({o.proposal.branch for o in outcomes if o.proposal and o.proposal.status == "created"})

    def _report_unknown(self, only: set[str], known: set[str]) -> None:
        """A mistyped --policy is said at every discovery: the policy may still be added to Git later."""
        for name in sorted(only - known):
            log.error("%s; not reconciled until a policy of that name is in the repository",
                      unknown_policy(name, known, self.settings.reconcile), extra={"policy": name})

    def _trigger(self) -> IntervalTrigger:
        return IntervalTrigger(seconds=self.settings.interval.total_seconds(),
                               jitter=int(self.settings.jitter.total_seconds()) or None)

    def reconcile_unit(self, unit: str, members: tuple[str, ...]) -> None:
        """One pass over a policy, or over the policies of one group (they share a merge request)."""
        with self.busy:
            if self.stopping.is_set() or self.scheduler.get_job(f"unit:{unit}") is None:
                return  # shutting down, or a run queued before discovery removed the unit
            try:
                self._reconcile(unit, members)
            finally:
                self.waiting.discard(unit)

    def _reconcile(self, unit: str, members: tuple[str, ...]) -> None:
        cap = self.settings.reconcile.max_mrs_per_run
        settings = replace(self.settings.reconcile, only=members,
                           max_mrs_per_run=None if cap is None else max(0, cap - self.opened))
        began = time.monotonic()
        try:
            outcomes = reconcile(settings, push=True)
        except Exception as err:  # a bug: report it, keep serving the other policies
            log.exception("internal error: %s: %s", type(err).__name__, err, extra={"policy": unit})
            outcomes = [Outcome(m, "error", f"internal error: {type(err).__name__}") for m in members]
        seconds = time.monotonic() - began
        mine = [o for o in outcomes if o.policy in members]
        for outcome in mine:
            self.metrics.record(outcome.policy, outcome.status, seconds, outcome.decision, time.time())
            self._log(outcome.policy, outcome)
        # a group's members share one merge request: count requests (branches), not policies
        created = {o.proposal.branch for o in mine if o.proposal is not None and o.proposal.status == "created"}
        self.opened += len(created)
        if any(o.status == "transient" for o in mine):
            self._retry_sooner(f"unit:{unit}", unit, "a transient failure")
        else:
            self.failures.pop(unit, None)

    def _log(self, name: str, outcome: Outcome) -> None:
        level = logging.INFO if outcome.status == "ok" else logging.WARNING
        log.log(level, "%s: %s", outcome.status, outcome.message, extra={"policy": name})

    def _retry_sooner(self, job_id: str, unit: str, why: str) -> None:
        if self.stopping.is_set():
            return
        failures = self.failures[unit] = self.failures.get(unit, 0) + 1
        delay = min(self.settings.interval, self.settings.retry_after * 2 ** min(failures - 1, 30))  # no overflow
        job = self.scheduler.get_job(job_id)
        if job is not None:
            job.modify(next_run_time=datetime.now(UTC) + delay)
            log.info("%s, %d in a row; next try in %s", why, failures, format_duration(delay), extra={"policy": unit})


def run(settings: RunSettings) -> int:
    """Serve health and metrics, reconcile on schedule, and stop cleanly on SIGTERM or SIGINT."""
    metrics = Metrics()
    controller = Controller(settings, metrics)
    try:
        server = HealthServer(settings.host, settings.port, metrics.exposition, lambda: controller.alive,
                              lambda: controller.ready)
    except OSError as err:
        log.error("cannot listen on %s:%d: %s; choose another --listen address", settings.host, settings.port,
                  err.strerror or err)
        return 1
    stop = threading.Event()

    def on_signal(number: int, frame: FrameType | None) -> None:
        log.info("received %s: finishing the current pass, then exiting", signal.Signals(number).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.start()
    log.info("serving /metrics, /healthz and /readyz on %s:%d; reconciling every %s", settings.host, server.port,
             format_duration(settings.interval))
    controller.start()
    stop.wait()
    controller.stop()
    server.stop()
    log.info("stopped")
    return 0
