"""Templates ask can() and never decide: every can() answers as the endpoint it names does."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask
from flask_login import login_user

from portal import uow
from portal.accounts import Role
from portal.cases import rules
from portal.cases.models import Case, CaseStatus
from portal.notices import services as notices
from portal.security import can, rule_for
from tests.case_helpers import make_case
from tests.notice_helpers import make_notice

ROOT = Path(__file__).resolve().parent.parent
CAN_CALL = re.compile(r"""\bcan\(\s*['"]([\w.]+)['"]""")
# Ids no row has: an allowed request gets past the door and finds nothing (404 or a form).
MISSING = "999999"
NOT_IDS = {"action": "pause", "state": "done"}


def can_uses() -> dict[str, list[str]]:
    """Every endpoint named by can(), in the templates and the Python code, with where."""
    found: dict[str, list[str]] = {}
    files = [*(ROOT / "templates").rglob("*.html"), *(ROOT / "portal").rglob("*.py")]
    for path in files:
        for endpoint in CAN_CALL.findall(path.read_text(encoding="utf-8")):
            found.setdefault(endpoint, []).append(str(path.relative_to(ROOT)))
    return found


def test_templates_compare_no_roles_and_copy_no_status_lists() -> None:
    role_check = re.compile(r"current_user\.role\s*(==|!=|\bin\b|\bnot in\b)")
    status_literal = re.compile(r"""status\s*(==|!=|\bin\b|\bnot in\b)\s*[('"]""")
    offenders = [f"{path.relative_to(ROOT)}:{n}" for path in (ROOT / "templates").rglob("*.html")
                 for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                 if role_check.search(line) or status_literal.search(line)]
    assert offenders == []


def test_every_can_names_a_declared_endpoint(app: Flask) -> None:
    uses = can_uses()
    assert len(uses) >= 20
    unknown = {e: where for e, where in uses.items() if rule_for(app, e) is None}
    assert unknown == {}


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
def test_can_agrees_with_what_a_request_answers(app: Flask, users, role: Role) -> None:
    adapter = app.url_map.bind("localhost")
    rules_by_endpoint = {r.endpoint: r for r in app.url_map.iter_rules()}
    for endpoint in sorted(can_uses()):
        with app.test_request_context():
            login_user(users[role])
            answer = can(endpoint)
        url_rule = rules_by_endpoint[endpoint]
        url = adapter.build(endpoint, {a: NOT_IDS.get(a, MISSING) for a in url_rule.arguments})
        method = "GET" if "GET" in url_rule.methods else "POST"
        client = app.test_client()
        client.post("/login", data={"email": users[role].email,
                                    "password": "correct-horse-battery"})
        response = client.open(url, method=method, data={})
        where = f"can({endpoint!r}) as {role.value}: {method} {url} → {response.status_code}"
        assert answer == (response.status_code != 403), where
        assert response.status_code < 500, where


def test_can_is_false_for_a_visitor(app: Flask) -> None:
    with app.test_request_context():
        assert not any(can(endpoint) for endpoint in can_uses())


@pytest.mark.parametrize("status", list(CaseStatus), ids=str)
def test_the_case_buttons_are_the_transition_table(app: Flask, users, status: CaseStatus) -> None:
    """The object rule of cases.step is the table (for the user's role), with four eyes."""
    proposer, other = users[Role.AGENT], users[Role.ADMIN]
    case = Case(status=status, proposed_by_id=proposer.id)
    for user in users.values():
        expected = {t.action for t in rules.available(status, user.role, include_services=True)}
        expected -= rules.OWN_FORMS
        if user is proposer:
            expected.discard("approve")
        with app.test_request_context():
            login_user(user)
            assert {t.action for t in rules.steps(case, user)} == expected
            assert can("cases.step", case) == bool(expected)
            assert can("cases.pay", case) == (user.role in rules.AGENTS
                                              and status == CaseStatus.APPROVED)
    assert rules.waits_for_other_agent(case, proposer) == (status == CaseStatus.PROPOSED)
    assert not rules.waits_for_other_agent(case, other)


LINK = re.compile(r"""<a\b[^>]*\bhref="(/[^"#?]*)""")


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
def test_no_page_links_to_what_its_reader_may_not_open(app: Flask, users, client, auth,
                                                       role: Role) -> None:
    """The dashboard's charts and the case list, with a sign-off waiting and a case listed:
    every link answers its reader (no 403), and only who may act on cases can select them."""
    make_case(users)
    notices.request_signoff(make_notice(users), actor=users[Role.AGENT])
    uow.commit()
    auth.login(role)
    forbidden = []
    for page in ("/dashboard", "/cases/"):
        html = client.get(page).get_data(as_text=True)
        for href in sorted(set(LINK.findall(html))):
            if href.startswith(("/static/", "/logout")):
                continue
            if client.get(href).status_code == 403:
                forbidden.append(f"{page} → {href}")
        if page == "/cases/":
            with app.test_request_context():
                login_user(users[role])
                may_select = can("cases.bulk")
            assert ('name="case_ids"' in html) == may_select
    assert forbidden == []
