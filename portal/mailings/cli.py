"""`flask --app portal mailings worker`: the worker for the mail queue."""

from __future__ import annotations

import contextlib
import logging
import signal
import time
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from redis.exceptions import RedisError
from rq import SimpleWorker

from portal import jobs
from portal.extensions import rq

log = logging.getLogger(__name__)
# Waits while Redis is away: 1 s, 2 s, 4 s … at most this long.
MAX_RECONNECT_WAIT = 30.0

mailings_cli = AppGroup("mailings", help="Mailings: the mail queue's worker.")


class PromptlyStoppingWorker(SimpleWorker):
    """RQ's worker, which runs jobs in its own process, with a stop that never waits long
    for its command thread (also for the tests' in-process workers)."""

    def unsubscribe(self) -> None:
        """Stop the thread that listens for RQ's worker commands, waiting at most a second.
        RQ sends UNSUBSCRIBE and only then stops the thread, and redis-py's ``stop()`` waits
        for it without a bound: when the thread reads the reply first, it goes on to wait a
        minute for a new subscription, and a SIGTERM (or a burst's end) waited with it. Here
        the thread is told to stop first, so the reply ends it. Safe to call again, and when
        Redis is away."""
        thread, pubsub = self.pubsub_thread, self.pubsub
        if thread is None or pubsub is None:
            return
        self.pubsub_thread = None
        self.log.info("Worker %s: unsubscribing from channel %s", self.name,
                      self.pubsub_channel_name)
        thread.stop(timeout=0)  # clears its running flag; no wait yet
        with contextlib.suppress(RedisError):  # Redis away: the thread stops after a failed read
            pubsub.unsubscribe()
        thread.join(timeout=1)
        if not thread.is_alive():  # a thread still running closes the subscription as it ends
            pubsub.close()


class AppWorker(PromptlyStoppingWorker):
    """Runs each job in this process, in a fresh application context. Flask-RQ's worker starts
    a new Python process per job (about a second each), too slow for thousands of messages;
    a chunk job sends hundreds, so no fork is needed for isolation from a crash either: the
    reconciler recovers a chunk whose worker died."""

    app: Flask

    def execute_job(self, job: Any, queue: Any) -> Any:
        with self.app.app_context():
            return super().execute_job(job, queue)


def make_worker(app: Flask, queues: tuple[str, ...] = ("mail",), **kwargs: Any) -> AppWorker:
    known = rq.queues
    chosen = [known[name] for name in queues]
    worker = AppWorker(chosen, connection=chosen[0].connection, job_class=chosen[0].job_class,
                       **kwargs)
    worker.app = app
    return worker


def _wait_for_redis(worker: AppWorker, wait: float) -> float:
    """Sleep with back-off until Redis answers; returns the next wait."""
    while True:
        try:
            worker.connection.ping()
            return wait
        except RedisError as exc:
            log.warning("Redis cannot be reached (%s); trying again in %.0f s", exc, wait)
        time.sleep(wait)
        wait = min(wait * 2, MAX_RECONNECT_WAIT)


def work(app: Flask, queues: tuple[str, ...] = ("mail",), *, burst: bool = False,
         name: str | None = None) -> None:
    """Work the queues until asked to stop. RQ's worker quits when Redis goes away (and its
    last words, ``register_death``, then raise ``ConnectionError``); this waits for Redis
    with back-off and starts a new worker, so the mail queue outlives a Redis restart."""
    wait = 1.0
    while True:
        worker = make_worker(app, queues, name=name, worker_ttl=jobs.WORKER_TTL)
        started = time.monotonic()
        try:
            worker.work(burst=burst)
        except RedisError as exc:
            log.warning("the worker lost Redis: %s", exc)
        finally:
            # RQ's teardown skips this when Redis is away (its last words raise first): the
            # old worker's command thread would otherwise live on beside the new worker's.
            worker.unsubscribe()
        if burst or worker._shutdown_requested_date is not None:  # done, or asked to stop
            return
        # Between workers, SIGTERM and Ctrl-C end the process as usual.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if time.monotonic() - started > 60:
            wait = 1.0  # it ran a good while: this is a new outage
        time.sleep(wait)
        wait = _wait_for_redis(worker, min(wait * 2, MAX_RECONNECT_WAIT))


@mailings_cli.command("worker")
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
@click.option("--name", default=None, help="Worker name (default: RQ's).")
@click.argument("queues", nargs=-1)
def worker(burst: bool, name: str | None, queues: tuple[str, ...]) -> None:
    """Work the mail queue (or the QUEUES given) with jobs run in this process."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    work(app, queues or ("mail",), burst=burst, name=name)
