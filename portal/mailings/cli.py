"""`flask --app portal mailings worker`: the worker for the mail queue."""

from __future__ import annotations

from typing import Any

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from rq import SimpleWorker

from portal.extensions import rq

mailings_cli = AppGroup("mailings", help="Mailings: the mail queue's worker.")


class AppWorker(SimpleWorker):
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


@mailings_cli.command("worker")
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
@click.option("--name", default=None, help="Worker name (default: RQ's).")
@click.argument("queues", nargs=-1)
def worker(burst: bool, name: str | None, queues: tuple[str, ...]) -> None:
    """Work the mail queue (or the QUEUES given) with jobs run in this process."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    make_worker(app, queues or ("mail",), name=name).work(burst=burst)
