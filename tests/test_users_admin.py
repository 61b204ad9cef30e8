"""Admin pages for staff accounts, and the rules behind them."""

from __future__ import annotations

import re

from sqlalchemy import select

from portal.accounts import Role, User
from portal.audit.models import AuditEntry
from portal.extensions import db


def test_admin_creates_a_user_with_a_one_time_password(app, client, auth) -> None:
    auth.login(Role.ADMIN)
    response = client.post("/admin/users/new", data={
        "email": "New.Agent@Example.com", "name": "New Agent", "role": "agent"})
    assert response.status_code == 200
    password = re.search(r'id="temporary-password">([^<]+)<', response.text).group(1)
    user = db.session.scalar(select(User).where(User.email == "new.agent@example.com"))
    assert user.role == "agent" and user.must_change_password
    fresh = app.test_client()
    fresh.post("/login", data={"email": "new.agent@example.com", "password": password})
    assert fresh.get("/dashboard").headers["Location"] == "/password"


def test_create_form_shows_errors_next_to_fields_and_saves_nothing(client, auth, users) -> None:
    auth.login(Role.ADMIN)
    response = client.post("/admin/users/new", data={
        "email": "not-an-email", "name": "", "role": "superuser"})
    assert response.status_code == 422
    for name in ("email", "name", "role"):
        assert f'id="{name}-error"' in response.text
    assert 'aria-invalid="true"' in response.text
    duplicate = client.post("/admin/users/new", data={
        "email": users[Role.LEGAL].email, "name": "Dup", "role": "legal"})
    assert "already exists" in duplicate.text
    assert len(db.session.scalars(select(User)).all()) == len(users)


def test_admin_changes_a_role_and_the_user_is_signed_out(app, client, auth, users) -> None:
    agent_client = app.test_client()
    agent_client.post("/login", data={"email": users[Role.AGENT].email,
                                      "password": "correct-horse-battery"})
    auth.login(Role.ADMIN)
    target = users[Role.AGENT]
    response = client.post(f"/admin/users/{target.id}", data={"name": "Promoted",
                                                                "role": "legal"})
    assert response.status_code == 302
    assert db.session.get(User, target.id).role == "legal"
    assert agent_client.get("/dashboard").status_code == 302  # new rights, new session
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "user.update"))
    assert entry.before["role"] == "agent" and entry.after["role"] == "legal"
    page = client.get(f"/admin/users/{target.id}")
    assert "user.update" in page.text  # the account's history partial


def test_admin_cannot_lock_themselves_out(client, auth, users) -> None:
    auth.login(Role.ADMIN)
    admin = users[Role.ADMIN]
    response = client.post(f"/admin/users/{admin.id}", data={"name": "Me", "role": "agent"})
    assert response.status_code == 422
    assert "own admin role" in response.text
    response = client.post(f"/admin/users/{admin.id}/active", follow_redirects=True)
    assert "cannot deactivate your own account" in response.text
    assert db.session.get(User, admin.id).active and db.session.get(User, admin.id).role == "admin"


def test_deactivate_and_reactivate(app, client, auth, users) -> None:
    auth.login(Role.ADMIN)
    target = users[Role.LEGAL]
    client.post(f"/admin/users/{target.id}/active")
    assert not db.session.get(User, target.id).active
    refused = app.test_client().post("/login", data={"email": target.email,
                                                     "password": "correct-horse-battery"})
    assert refused.status_code == 200
    client.post(f"/admin/users/{target.id}/active")
    assert db.session.get(User, target.id).active
    actions = db.session.scalars(select(AuditEntry.action).where(
        AuditEntry.subject_id == str(target.id))).all()
    assert "user.deactivate" in actions and "user.activate" in actions


def test_destructive_buttons_ask_for_confirmation(client, auth, users) -> None:
    auth.login(Role.ADMIN)
    page = client.get(f"/admin/users/{users[Role.AGENT].id}").text
    assert page.count("hx-confirm=") == 2


def test_non_admins_cannot_manage_users(client, auth, users) -> None:
    auth.login(Role.LEGAL)
    target = users[Role.AGENT]
    assert client.post(f"/admin/users/{target.id}", data={"name": "x", "role": "admin"}
                       ).status_code == 403
    assert client.post(f"/admin/users/{target.id}/reset-password").status_code == 403
    assert db.session.get(User, target.id).role == "agent"
