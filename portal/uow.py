"""One unit of work per request and per job: services only flush; the boundary commits.

A request that changes something (POST, PUT, PATCH, DELETE) is committed once, after its view
answered below 400; any other answer, and every exception, rolls it back. A GET or HEAD never
writes: it is never committed, and under TESTING a GET that wrote anything fails loudly. Jobs end
their unit of work in ``portal.jobs.unit_of_work``; CLI commands call :func:`commit`.

Work that must wait until the data it reads is committed (queueing a job that reads a row) is
registered with :func:`after_commit`; a rollback drops it. What the unit did outside the
database (a file written before its row is committed) is undone by :func:`after_rollback`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, Response, has_request_context, request
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from portal.extensions import db

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_CALLBACKS = "uow.after_commit"
_UNDO = "uow.after_rollback"
_WROTE = "uow.wrote"


def after_commit(callback: Callable[[], Any]) -> None:
    """Run ``callback`` once the current unit of work is committed (never if rolled back)."""
    db.session.info.setdefault(_CALLBACKS, []).append(callback)


def after_rollback(callback: Callable[[], Any]) -> None:
    """Run ``callback`` if the current transaction is rolled back (never once committed):
    undo what the unit did outside the database, such as a file it wrote."""
    db.session.info.setdefault(_UNDO, []).append(callback)


def commit() -> None:
    """The boundary's commit: the one place the web and job units of work end; then the
    callbacks registered with :func:`after_commit` run, in order."""
    db.session.commit()  # the boundary's commit (requests, jobs, CLI, documented exceptions)
    db.session.info.pop(_WROTE, None)  # committed on purpose: not a GET's stray write
    callbacks = db.session.info.pop(_CALLBACKS, [])
    for callback in callbacks:
        callback()


def rollback() -> None:
    db.session.info.pop(_CALLBACKS, None)
    db.session.rollback()


@event.listens_for(Session, "after_rollback")
def _drop_callbacks(session: Session) -> None:
    session.info.pop(_CALLBACKS, None)
    for undo in session.info.pop(_UNDO, []):
        undo()


@event.listens_for(Session, "after_commit")
def _keep_outside_work(session: Session) -> None:
    """Committed (by the boundary or a documented early commit): nothing to undo any more."""
    session.info.pop(_UNDO, None)


@event.listens_for(Session, "after_flush")
def _flushed(session: Session, _flush: UOWTransaction) -> None:
    if has_request_context():
        session.info[_WROTE] = True


@event.listens_for(Session, "do_orm_execute")
def _executed(state: ORMExecuteState) -> None:
    if has_request_context() and (state.is_insert or state.is_update or state.is_delete):
        state.session.info[_WROTE] = True


class WriteDuringSafeRequest(RuntimeError):
    """A GET (or HEAD) changed the database: the change belongs to the POST that causes it."""


def init_app(app: Flask) -> None:
    """After ``web.init_app``: after_request handlers run last-registered first, so this one
    decides on the view's own status, before ``form_errors_reach_htmx`` turns 422 into 200."""

    @app.after_request
    def _end(response: Response) -> Response:
        wrote = db.session.info.pop(_WROTE, False)
        if request.method in SAFE_METHODS:
            # Nothing to commit. Its transaction ends with the request (Flask-SQLAlchemy
            # removes the session, which rolls back) and not here, where a rollback would
            # expire the rows a streamed response (a CSV export) still reads.
            if wrote and app.testing:
                raise WriteDuringSafeRequest(f"{request.method} {request.path} wrote to the "
                                             "database")
        elif response.status_code < 400:
            commit()  # the request's unit of work
        else:
            rollback()
        return response

    @app.teardown_request
    def _forget(_exc: BaseException | None) -> None:
        db.session.info.pop(_WROTE, None)
