"""One unit of work per request: a change commits after a non-error answer, never after a
422 (not even the one htmx gets as 200), never on a GET; queueing waits for the commit."""

from __future__ import annotations

import pytest
from flask import Flask, get_flashed_messages, session

from portal import jobs, uow
from portal.accounts import Role, User
from portal.extensions import db
from portal.security import PUBLIC, access


def _renaming_app(app_factory, status: int) -> Flask:
    app = app_factory()

    @app.route("/rename/<int:user_id>", methods=["GET", "POST"])
    @access(PUBLIC)
    def rename(user_id: int) -> tuple[str, int]:
        db.session.get(User, user_id).name = "Renamed"
        db.session.flush()
        return "", status

    return app


def _name(user_id: int) -> str:
    db.session.expire_all()
    return db.session.get(User, user_id).name


@pytest.mark.parametrize("status", [200, 302])
def test_a_change_is_committed_after_a_non_error_answer(app_factory, users, status) -> None:
    app = _renaming_app(app_factory, status)
    user_id = users[Role.AGENT].id
    with app.app_context():
        assert app.test_client().post(f"/rename/{user_id}").status_code == status
        assert _name(user_id) == "Renamed"


@pytest.mark.parametrize("htmx", [False, True])
def test_a_422_never_commits(app_factory, users, htmx) -> None:
    app = _renaming_app(app_factory, 422)
    user_id = users[Role.AGENT].id
    headers = {"HX-Request": "true"} if htmx else {}
    with app.app_context():
        response = app.test_client().post(f"/rename/{user_id}", headers=headers)
        assert response.status_code == (200 if htmx else 422)
        assert _name(user_id) != "Renamed"


def test_a_get_that_writes_fails_loudly(app_factory, users) -> None:
    app = _renaming_app(app_factory, 200)
    user_id = users[Role.AGENT].id
    with app.app_context():
        with pytest.raises(uow.WriteDuringSafeRequest):
            app.test_client().get(f"/rename/{user_id}")
        db.session.rollback()
        assert _name(user_id) != "Renamed"


def test_callbacks_run_after_the_commit_and_never_after_a_rollback(app) -> None:
    ran: list[str] = []
    uow.after_commit(lambda: ran.append("dropped"))
    uow.rollback()
    uow.after_commit(lambda: ran.append("kept"))
    uow.commit()
    uow.commit()
    assert ran == ["kept"]


def test_an_unreachable_queue_is_said_once_per_request(app: Flask) -> None:
    with app.test_request_context(method="POST"):
        for _ in range(3):
            jobs.enqueue_after_commit(lambda: False, unreachable="The queue cannot be reached.")
        assert "_flashes" not in session  # nothing is queued before the commit
        uow.commit()
        assert get_flashed_messages() == ["The queue cannot be reached."]
