"""Sign-in behind a reverse proxy, sessions that end on the server, a fresh CSRF token at
sign-in, and a lockout answer that does not tell which accounts exist."""

from __future__ import annotations

import re

from sqlalchemy import select

from portal.accounts import Role
from portal.audit.models import AuditEntry
from portal.auth.models import LoginFailure
from portal.extensions import db
from tests.conftest import PASSWORD

ATTACKER, COLLEAGUE = "203.0.113.7", "198.51.100.9"


def _guess(client, n: int, forwarded_for: str) -> None:
    for i in range(n):
        client.post("/login", data={"email": f"guess{i}@example.com", "password": "x" * 12},
                    headers={"X-Forwarded-For": forwarded_for})


def test_behind_one_trusted_proxy_the_ip_limit_is_per_real_client(app, app_factory,
                                                                  users) -> None:
    proxied = app_factory(PORTAL_TRUSTED_PROXIES=1, LOGIN_IP_MAX_FAILURES=3)
    client = proxied.test_client()  # every request comes from 127.0.0.1, as from nginx
    _guess(client, 3, ATTACKER)
    login = {"email": users[Role.ADMIN].email, "password": PASSWORD}
    blocked = client.post("/login", data=login, headers={"X-Forwarded-For": ATTACKER})
    assert blocked.status_code == 429
    colleague = proxied.test_client()
    allowed = colleague.post("/login", data=login,
                             headers={"X-Forwarded-For": f"{ATTACKER}, {COLLEAGUE}"})
    assert allowed.status_code == 302  # only the address nginx saw (the last one) counts
    db.session.expire_all()
    assert set(db.session.scalars(select(LoginFailure.ip))) == {ATTACKER}
    signed_in = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "auth.login"))
    assert signed_in.ip == COLLEAGUE


def test_without_trusted_proxies_x_forwarded_for_is_ignored(app, client, users) -> None:
    app.config["LOGIN_IP_MAX_FAILURES"] = 3
    _guess(client, 3, ATTACKER)
    response = client.post("/login", data={"email": users[Role.ADMIN].email,
                                            "password": PASSWORD},
                           headers={"X-Forwarded-For": COLLEAGUE})
    assert response.status_code == 429  # a client cannot pick its own address
    assert set(db.session.scalars(select(LoginFailure.ip))) == {"127.0.0.1"}


def test_a_copied_session_cookie_is_worthless_after_logout(app, client, auth) -> None:
    auth.login(Role.AGENT)
    assert client.get("/dashboard").status_code == 200
    stolen = client.get_cookie("session").value
    auth.logout()
    replay = app.test_client()
    replay.set_cookie("session", stolen)
    for path in ("/dashboard", "/cases/export.csv"):
        response = replay.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith("/login")


def test_signing_in_again_after_logout_works(client, auth) -> None:
    auth.login(Role.AGENT)
    auth.logout()
    assert auth.login(Role.AGENT).status_code == 302
    assert client.get("/dashboard").status_code == 200


def _form_token(html: str) -> str:
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)


def test_the_csrf_token_seen_before_sign_in_is_worthless_after_it(app_factory, users) -> None:
    app = app_factory(WTF_CSRF_ENABLED=True)
    client = app.test_client()
    before = _form_token(client.get("/login").text)
    response = client.post("/login", data={"email": users[Role.AGENT].email,
                                            "password": PASSWORD, "csrf_token": before})
    assert response.status_code == 302
    # A form posted with the old token is refused; the new page's token works.
    assert client.post("/logout", data={"csrf_token": before}).status_code == 400
    fresh = _form_token(client.get("/profile").text)
    assert fresh != before
    assert client.post("/logout", data={"csrf_token": fresh}).status_code == 302


def _error(response) -> str:
    return re.search(r'id="password-error"[^>]*>(.*?)</', response.text, re.S).group(1).strip()


def test_a_locked_account_and_an_unknown_one_get_the_same_answer(client, auth, users) -> None:
    for _ in range(5):
        auth.login(Role.AGENT, password="nope-nope-nope")
    locked = auth.login(Role.AGENT)  # the right password, while locked
    unknown = client.post("/login", data={"email": "nobody@example.com", "password": PASSWORD})
    wrong = client.post("/login", data={"email": users[Role.LEGAL].email, "password": "x" * 12})
    assert locked.status_code == unknown.status_code == wrong.status_code == 200
    assert _error(locked) == _error(unknown) == _error(wrong)
    assert "locked for 15 minutes" in _error(unknown)
    assert client.get("/dashboard").status_code == 302
