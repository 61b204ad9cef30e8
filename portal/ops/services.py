"""Readiness: can this portal do its work now? The database answers, Redis answers, and a
worker of each queue the portal uses has sent RQ its heartbeat within the last minute."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import current_app
from redis import Redis
from rq import Worker
from sqlalchemy import text

from portal.extensions import db

log = logging.getLogger(__name__)

OK, FAILING = "ok", "failing"
# An idle RQ worker beats each time its wait for a job ends, every ``worker_ttl - 15``
# seconds: with ``jobs.WORKER_TTL`` (60) every 45 s, inside this minute. A worker that has not
# beaten for longer is presumed stuck or gone, unless it is busy with a job: it beat when it
# took the job, and RQ drops it from its registry when the job's timeout has passed.
HEARTBEAT_WITHIN = timedelta(seconds=60)
# Each check gives up after this long, so a hung Redis or database makes the probe fail
# (503) before the prober's own timeout (often 1-5 s) rather than hang it. Redis's client
# would wait 5 s by default, the database as long as the query takes.
CHECK_TIMEOUT_SECONDS = 1.5


@dataclass(frozen=True)
class Readiness:
    checks: dict[str, str]

    @property
    def ready(self) -> bool:
        return all(state == OK for state in self.checks.values())


def queue_names() -> list[str]:
    return list(current_app.config["RQ_QUEUES"])


def database_ok() -> bool:
    try:
        if db.session.get_bind().dialect.name == "postgresql":
            db.session.execute(text("SELECT set_config('statement_timeout', :ms, true)"),
                               {"ms": str(int(CHECK_TIMEOUT_SECONDS * 1000))})
        db.session.execute(text("SELECT 1"))
        return True
    except Exception as exc:  # any failure means "not ready"; the reason goes to the log
        log.warning("readiness: the database cannot be reached: %s", type(exc).__name__)
        return False
    finally:
        try:
            db.session.rollback()
        except Exception:  # the connection is gone; nothing to end
            db.session.remove()


def _redis() -> Redis:
    """A client of the portal's Redis that gives up after ``CHECK_TIMEOUT_SECONDS``."""
    return Redis.from_url(current_app.config["RQ_CONNECTION"],
                          socket_timeout=CHECK_TIMEOUT_SECONDS,
                          socket_connect_timeout=CHECK_TIMEOUT_SECONDS)


def beating_queues(connection: Redis, now: datetime | None = None) -> set[str]:
    """The queues with at least one worker that beat within ``HEARTBEAT_WITHIN`` (RQ's own
    worker registry; a worker that died without deregistering expires from it, and its last
    heartbeat tells the rest)."""
    now = now or datetime.now(UTC)
    beating: set[str] = set()
    for worker in Worker.all(connection=connection):
        beat = worker.last_heartbeat
        if beat is None:
            continue
        if beat.tzinfo is None:
            beat = beat.replace(tzinfo=UTC)
        if now - beat <= HEARTBEAT_WITHIN or worker.get_state() == "busy":
            beating.update(worker.queue_names())
    return beating


def readiness() -> Readiness:
    checks = {"database": OK if database_ok() else FAILING}
    connection = _redis()
    try:
        connection.ping()
        beating = beating_queues(connection)
        checks["redis"] = OK
    except Exception as exc:
        log.warning("readiness: Redis cannot be reached: %s", type(exc).__name__)
        checks["redis"], beating = FAILING, set()
    finally:
        connection.close()
    for name in queue_names():
        checks[f"worker:{name}"] = OK if name in beating else FAILING
    return Readiness(checks)
