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

    # One account per printed line: a role each, finance twice (maker and checker).
    assert db.session.scalar(select(func.count(User.id))) == len(lines) == len(Role) + 1
    # The outage, and the shutdown whose customers accept their offers (portal.main.demo_offers).
    assert db.session.scalar(select(func.count(Event.id))) == 2
    assert db.session.scalar(select(Event.severity).order_by(Event.id).limit(1)) == "sev1"


def test_demo_data_shows_a_signed_audit_checkpoint(app, runner) -> None:
    assert runner.invoke(args=["demo", "seed"]).exit_code == 0
    from sqlalchemy import func, select

    from portal.audit.models import AuditCheckpoint
    from portal.extensions import db

    assert db.session.scalar(select(func.count(AuditCheckpoint.id))) == 1
