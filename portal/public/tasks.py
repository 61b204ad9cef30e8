"""The snapshot of the public site as an RQ job: queued when what the public site shows
changed (``portal.wiring`` connects :func:`on_public_change`), and every few minutes by
``rq cron`` in case a change found Redis down.

Coalesced: a flag in Redis says "a snapshot job is queued and has not started"; while it is
set, further changes queue nothing (the queued job will see them). The job clears the flag
before it renders, so a change during a rewrite queues the next one. The job is idempotent:
it renders whatever is published when it runs.
"""

from __future__ import annotations

import contextlib
import logging
import uuid

from flask import current_app
from redis.exceptions import RedisError

from portal import jobs
from portal.extensions import rq
from portal.public import snapshot

log = logging.getLogger(__name__)

QUEUED_FLAG = "aftercare:public:snapshot:queued"
# A queued job that never started (its worker died) stops blocking new ones after this long.
FLAG_SECONDS = 300
REFRESH_INTERVAL_SECONDS = 300


@rq.job
@jobs.unit_of_work
def write_snapshot_job() -> str:
    with contextlib.suppress(RedisError, OSError):  # else the flag expires by itself
        rq.queue.connection.delete(QUEUED_FLAG)
    return snapshot.write(current_app._get_current_object()).name  # type: ignore[attr-defined]


@rq.job
@jobs.unit_of_work
def refresh_snapshot_job() -> bool:
    """Periodic: queue a rewrite (a change whose job was lost shows within minutes)."""
    return queue_snapshot()


def queue_snapshot() -> bool:
    """Queue one rewrite unless one is already waiting; False when Redis cannot be reached.
    Nothing is queued when ``PUBLIC_SNAPSHOT_DIR`` is empty (no snapshot wanted)."""
    if not current_app.config.get("PUBLIC_SNAPSHOT_DIR"):
        return True
    try:
        connection = rq.queue.connection
        if not connection.set(QUEUED_FLAG, "1", nx=True, ex=FLAG_SECONDS):
            return True  # a queued job will render this change too
    except (RedisError, OSError) as exc:
        log.warning("could not queue the public snapshot: %s", exc)
        return False
    if jobs.enqueue(write_snapshot_job, job_id=f"public-snapshot-{uuid.uuid4().hex}",
                    timeout=600):
        return True
    with contextlib.suppress(RedisError, OSError):
        connection.delete(QUEUED_FLAG)
    return False


def on_public_change(_sender: object = None, **_kwargs: object) -> None:
    """Receiver of ``notices.signals.public_content_changed`` (sent after the commit) and of
    the events' public settings."""
    queue_snapshot()
