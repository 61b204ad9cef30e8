"""CSRF on every state change, security headers, and a CSP that needs no inline script."""

from __future__ import annotations

import re
from pathlib import Path

from portal.accounts import Role
from portal.security import CONTENT_SECURITY_POLICY

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def _token(html: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'"X-CSRFToken": "([^"]+)"', html
    )
    assert match, "no CSRF token in the page"
    return match.group(1)


def test_post_without_token_gets_400_and_changes_nothing(app_factory, users) -> None:
    app = app_factory(WTF_CSRF_ENABLED=True)
    client = app.test_client()
    response = client.post("/login", data={"email": users[Role.ADMIN].email,
                                            "password": "correct-horse-battery"})
    assert response.status_code == 400
    assert "expired" in response.text
    assert client.get("/dashboard").status_code == 302  # not signed in


def test_form_token_and_htmx_header_token_are_accepted(app_factory, users) -> None:
    app = app_factory(WTF_CSRF_ENABLED=True)
    client = app.test_client()
    token = _token(client.get("/login").text)
    response = client.post("/login", data={"email": users[Role.ADMIN].email,
                                            "password": "correct-horse-battery",
                                            "csrf_token": token})
    assert response.status_code == 302
    page = client.get("/audit/")
    header_token = re.search(r'hx-headers=\'\{"X-CSRFToken": "([^"]+)"\}\'', page.text).group(1)
    # An htmx POST carries the token in the header that hx-headers on <body> sets.
    refused = client.post("/audit/verify", headers={"HX-Request": "true"})
    assert refused.status_code == 400
    accepted = client.post("/audit/verify",
                           headers={"HX-Request": "true", "X-CSRFToken": header_token})
    assert accepted.status_code == 302


def test_security_headers_on_every_page(client) -> None:
    for url in ("/login", "/static/css/portal.css", "/does-not-exist"):
        headers = client.get(url).headers
        assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "same-origin"


def test_csp_allows_no_inline_script_or_style() -> None:
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert "unsafe-eval" not in CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY


def test_templates_contain_no_inline_script_style_or_handlers() -> None:
    offenders = []
    for path in TEMPLATES.rglob("*.html"):
        html = path.read_text()
        for pattern in (r"<script(?![^>]*\bsrc=)[^>]*>", r"<style", r"\son[a-z]+=",
                        r"\sstyle=", r"hx-on", r"https?://(?!www\.w3\.org)"):
            if re.search(pattern, html):
                offenders.append(f"{path.name}: {pattern}")
    assert offenders == []


def test_htmx_is_configured_for_the_csp(client) -> None:
    html = client.get("/login").text
    config = re.search(r'<meta name="htmx-config" content=\'([^\']+)\'>', html).group(1)
    assert '"includeIndicatorStyles": false' in config  # no inline <style> injected
    assert '"allowEval": false' in config


def test_staff_pages_are_not_cached(client, auth) -> None:
    auth.login(Role.AGENT)
    assert client.get("/dashboard").headers["Cache-Control"] == "no-store"


def test_error_pages_render_in_the_shell(client, auth) -> None:
    missing = client.get("/nothing-here")
    assert missing.status_code == 404 and "Page not found" in missing.text
    auth.login(Role.AGENT)
    forbidden = client.get("/admin/users/")
    assert forbidden.status_code == 403 and "Not allowed" in forbidden.text


def test_unexpected_error_gives_500_page_and_rolls_back(app_factory, users) -> None:
    from portal.extensions import db
    from portal.security import STAFF, access

    app = app_factory()

    @app.route("/boom")
    @access(STAFF)
    def boom() -> str:
        users[Role.AGENT].name = "half-done change"
        db.session.flush()
        raise RuntimeError("boom")

    client = app.test_client()
    client.post("/login", data={"email": users[Role.AGENT].email,
                                "password": "correct-horse-battery"})
    response = client.get("/boom")
    assert response.status_code == 500
    assert "Something went wrong" in response.text
    with app.app_context():
        from portal.accounts import User

        assert db.session.get(User, users[Role.AGENT].id).name != "half-done change"


def test_htmx_request_without_session_is_told_to_redirect(client) -> None:
    response = client.get("/audit/", headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"].startswith("/login")


def test_form_errors_reach_htmx_as_200_and_others_as_422(client, auth) -> None:
    """htmx swaps only 2xx answers; a boosted form with errors must still show them."""
    auth.login("admin")
    plain = client.post("/events/new", data={"title": ""})
    assert plain.status_code == 422
    boosted = client.post("/events/new", data={"title": ""},
                          headers={"HX-Request": "true", "HX-Boosted": "true"})
    assert boosted.status_code == 200 and boosted.headers["HX-Push-Url"] == "false"
    assert "title-error" in boosted.get_data(as_text=True)
