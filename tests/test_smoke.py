"""The portal starts, serves its pages and lets each demo role in."""

from __future__ import annotations

from portal.accounts import Role


def test_login_page_renders_with_assets(client) -> None:
    page = client.get("/login")
    assert page.status_code == 200
    assert b'/static/js/htmx-2.0.11.min.js' in page.data
    assert client.get("/static/js/htmx-2.0.11.min.js").status_code == 200
    assert client.get("/static/css/portal.css").status_code == 200


def test_demo_seed_signs_in_each_role(app, runner) -> None:
    result = runner.invoke(args=["demo", "seed"])
    assert result.exit_code == 0, result.output
    lines = [line.split() for line in result.output.splitlines() if "@" in line]
    assert {line[0] for line in lines} == {r.value for r in Role}
    for role, email, password in lines:
        client = app.test_client()
        response = client.post("/login", data={"email": email, "password": password})
        assert response.status_code == 302, role
        dashboard = client.get("/dashboard")
        assert dashboard.status_code == 200
        assert (b"/admin/users/" in dashboard.data) == (role == "admin"), (role, email)
    # A second seed changes nothing; the sample event is a sev1 incident.
    again = runner.invoke(args=["demo", "seed"])
    assert again.exit_code == 0
    from sqlalchemy import func, select

    from portal.accounts import User
    from portal.events.models import Event
    from portal.extensions import db
    from portal.main.cli import DEMO_USERS
    from portal.programmes.models import Entitlement

    assert db.session.scalar(select(func.count(User.id))) == len(DEMO_USERS)
    # The outage's customers have entitlements (portal.main.demo_entitlements), once.
    assert db.session.scalar(select(func.count(Entitlement.id))) == 7
    # The outage, and the shutdown whose customers accept their offers (portal.main.demo_offers).
    assert db.session.scalar(select(func.count(Event.id))) == 2
    assert db.session.scalar(select(Event.severity).order_by(Event.id).limit(1)) == "sev1"


def test_demo_data_shows_a_signed_audit_checkpoint(app, runner) -> None:
    assert runner.invoke(args=["demo", "seed"]).exit_code == 0
    from sqlalchemy import func, select

    from portal.audit.models import AuditCheckpoint
    from portal.extensions import db

    assert db.session.scalar(select(func.count(AuditCheckpoint.id))) == 1


def test_seeding_before_the_queue_runs_says_so_once(app_factory, tmp_path, caplog) -> None:
    """`make run` seeds before it starts Redis: the jobs wait in the database and are queued
    when it starts. A new user is told that in one line, not shown a connection error per
    job ("could not queue …: Error 2 connecting to …")."""
    import logging

    app = app_factory(REDIS_URL=f"unix://{tmp_path / 'not-yet.sock'}")
    with app.app_context(), caplog.at_level(logging.WARNING):
        result = app.test_cli_runner().invoke(args=["demo", "seed"])
    assert result.exit_code == 0, result.output
    assert not [r for r in caplog.records if "could not queue" in r.getMessage()]
    [line] = [line for line in result.output.splitlines() if "job queue" in line]
    assert "queued when" in line and any(ch.isdigit() for ch in line)
