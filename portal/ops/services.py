"""Readiness: can this portal do its work now? The database answers, Redis answers, and a
worker of each queue the portal uses has sent RQ its heartbeat within the last minute
(``portal.jobs.live_workers``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import current_app
from redis import Redis
from sqlalchemy import text

from portal import jobs
from portal.extensions import db

log = logging.getLogger(__name__)

OK, FAILING = "ok", "failing"
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


def readiness() -> Readiness:
    checks = {"database": OK if database_ok() else FAILING}
    connection = _redis()
    try:
        connection.ping()
        beating = set(jobs.live_workers(connection))
        checks["redis"] = OK
    except Exception as exc:
        log.warning("readiness: Redis cannot be reached: %s", type(exc).__name__)
        checks["redis"], beating = FAILING, set()
    finally:
        connection.close()
    for name in queue_names():
        checks[f"worker:{name}"] = OK if name in beating else FAILING
    return Readiness(checks)
