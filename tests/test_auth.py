"""Sign-in, lockouts, sessions, password rules and the users CLI."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from portal.accounts import Role, User
from portal.audit.models import AuditEntry
from portal.auth import services
from portal.auth.models import LoginFailure
from portal.extensions import db
from portal.models import utcnow


def test_login_and_logout_are_recorded(client, auth, users) -> None:
    response = auth.login(Role.LEGAL)
    assert response.status_code == 302
    assert response.headers["Location"] == "/dashboard"
    assert client.get("/dashboard").status_code == 200
    assert auth.logout().status_code == 302
    assert client.get("/dashboard").headers["Location"].startswith("/login")
    actions = db.session.scalars(
        select(AuditEntry.action).where(AuditEntry.subject_id == str(users[Role.LEGAL].id))
    ).all()
    assert "auth.login" in actions and "auth.logout" in actions


def test_wrong_password_is_refused_with_message_next_to_field(client, auth) -> None:
    response = auth.login(Role.AGENT, password="wrong-password")
    assert response.status_code == 200
    assert 'id="password-error"' in response.text
    assert "Wrong e-mail or password, or the account is locked" in response.text
    assert client.get("/dashboard").status_code == 302


def test_unknown_email_gets_the_same_answer(client) -> None:
    response = client.post("/login", data={"email": "nobody@example.com", "password": "x" * 12})
    assert "Wrong e-mail or password, or the account is locked" in response.text


def test_account_locks_after_five_failures_for_fifteen_minutes(client, auth, users) -> None:
    for _ in range(5):
        auth.login(Role.AGENT, password="nope-nope-nope")
    user = db.session.get(User, users[Role.AGENT].id)
    db.session.refresh(user)
    assert user.locked_until is not None
    remaining = user.locked_until - utcnow()
    assert timedelta(minutes=14) < remaining <= timedelta(minutes=15)
    # Even the right password is refused while locked (with the answer any failure gets).
    response = auth.login(Role.AGENT)
    assert response.status_code == 200
    assert "or the account is locked" in response.text
    # Once the lock has run out, the right password works again.
    user.locked_until = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert auth.login(Role.AGENT).status_code == 302
    assert db.session.scalar(
        select(func.count(AuditEntry.id)).where(AuditEntry.action == "auth.locked")
    ) == 1


def test_four_failures_do_not_lock(client, auth, users) -> None:
    for _ in range(4):
        auth.login(Role.AGENT, password="nope-nope-nope")
    assert auth.login(Role.AGENT).status_code == 302


def test_per_ip_limit_across_accounts(app, client, users) -> None:
    app.config["LOGIN_IP_MAX_FAILURES"] = 3
    for n in range(3):
        client.post("/login", data={"email": f"guess{n}@example.com", "password": "x" * 12})
    response = client.post("/login", data={"email": users[Role.ADMIN].email,
                                            "password": "correct-horse-battery"})
    assert response.status_code == 429
    # Another address is not affected.
    other = app.test_client()
    response = other.post("/login", data={"email": users[Role.ADMIN].email,
                                           "password": "correct-horse-battery"},
                          environ_base={"REMOTE_ADDR": "10.9.9.9"})
    assert response.status_code == 302
    assert db.session.scalar(select(func.count(LoginFailure.id))) == 3


def test_deactivated_account_cannot_sign_in_and_is_signed_out(app, client, auth, users) -> None:
    assert auth.login(Role.AGENT).status_code == 302
    services.set_active(users[Role.AGENT], False, actor=users[Role.ADMIN])
    assert client.get("/dashboard").status_code == 302
    assert auth.login(Role.AGENT).status_code == 200


def test_reset_password_forces_a_change_at_next_sign_in(client, auth, users) -> None:
    temporary = services.reset_password(users[Role.AGENT], actor=users[Role.ADMIN])
    assert auth.login(Role.AGENT).status_code == 200  # old password no longer works
    assert auth.login(Role.AGENT, password=temporary).status_code == 302
    # Every page but the password form sends them to change it.
    assert client.get("/dashboard").headers["Location"] == "/password"
    assert client.get("/audit/").headers["Location"] == "/password"
    response = client.post("/password", data={"current_password": temporary,
                                              "new_password": "short", "confirm": "short"})
    assert response.status_code == 422
    assert "at least 10 characters" in response.text
    response = client.post("/password", data={
        "current_password": temporary, "new_password": "a-brand-new-password",
        "confirm": "a-brand-new-password"})
    assert response.status_code == 302
    assert client.get("/dashboard").status_code == 200
    assert not db.session.get(User, users[Role.AGENT].id).must_change_password


def test_passwords_are_hashed_with_scrypt_by_default(database_url, redis_url,
                                                     tmp_path) -> None:
    from werkzeug.security import check_password_hash

    from portal import create_app
    from tests.conftest import make_config

    settings = make_config(database_url, redis_url, tmp_path)
    del settings["PASSWORD_METHOD"]  # not the tests' fast hashing: what the portal chooses
    app = create_app(settings)
    with app.app_context():
        hashed = services.hash_password("correct-horse-battery")
    assert hashed.startswith("scrypt:") and "correct-horse-battery" not in hashed
    assert check_password_hash(hashed, "correct-horse-battery")


def test_create_user_rejects_duplicates_and_short_passwords(app, users) -> None:
    import pytest

    from portal.errors import RuleViolation

    with pytest.raises(RuleViolation) as err:
        services.create_user(users[Role.AGENT].email.upper(), "Dup", Role.AGENT)
    assert err.value.field == "email"
    with pytest.raises(RuleViolation):
        services.create_user("short@example.com", "S", Role.AGENT, "short")
    assert db.session.scalar(select(func.count(User.id))) == len(users)


def test_session_cookie_flags(app_factory, users) -> None:
    app = app_factory(SESSION_COOKIE_SECURE=True)
    client = app.test_client()
    response = client.post("/login", data={"email": users[Role.AGENT].email,
                                            "password": "correct-horse-battery"})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" in cookie


def test_next_parameter_only_redirects_within_the_site(client, users) -> None:
    data = {"email": users[Role.AGENT].email, "password": "correct-horse-battery"}
    response = client.post("/login?next=https://evil.example/", data=data)
    assert response.headers["Location"] == "/dashboard"
    client.post("/logout")
    response = client.post("/login?next=/audit/", data=data)
    assert response.headers["Location"] == "/audit/"


def test_cli_creates_a_user_and_prints_the_password(app, runner) -> None:
    result = runner.invoke(args=["users", "create", "lead@example.com", "--role", "admin"])
    assert result.exit_code == 0, result.output
    password = result.output.strip().rsplit(" ", 1)[-1]
    user = db.session.scalar(select(User).where(User.email == "lead@example.com"))
    assert user.role == "admin" and user.must_change_password
    client = app.test_client()
    response = client.post("/login", data={"email": "lead@example.com", "password": password})
    assert response.status_code == 302
    again = runner.invoke(args=["users", "create", "lead@example.com"])
    assert again.exit_code != 0
    assert "already exists" in again.output


def test_old_failed_sign_ins_are_pruned(app, client) -> None:
    from portal.main.tasks import prune_login_failures_job

    db.session.add(LoginFailure(ip="10.0.0.1", email="a@example.com",
                                at=utcnow() - timedelta(days=2)))
    db.session.commit()
    client.post("/login", data={"email": "b@example.com", "password": "x" * 12})
    assert prune_login_failures_job() == 1
    assert db.session.scalars(select(LoginFailure.email)).all() == ["b@example.com"]
