"""Every endpoint declares who may reach it, and answers each role as declared."""

from __future__ import annotations

import io

import pytest
from flask import Flask

from portal.accounts import Role
from portal.security import access, rule_for

ROLES: list[Role | None] = [None, Role.AGENT, Role.LEGAL, Role.ADMIN, Role.FINANCE]
# Endpoints whose answer to an allowed user signs them out; requested last per role.
SIGN_OUT = {"auth.logout"}
# Endpoints whose 503 is an answer, not a fault: /readyz while no RQ worker beats (the tests
# run none here); tests/test_operations.py checks its 200 and 503.
UNAVAILABLE_IS_AN_ANSWER = {"ops.readyz"}


def endpoints(app: Flask, samples: dict[str, str]) -> list[tuple[str, str, set[str]]]:
    """(endpoint, a URL for it with sample arguments, methods) for every rule."""
    adapter = app.url_map.bind("localhost")
    found = []
    for rule in app.url_map.iter_rules():
        methods = rule.methods - {"HEAD", "OPTIONS"}
        missing = rule.arguments - samples.keys()
        assert not missing, f"add a sample value for {missing} ({rule.rule})"
        url = adapter.build(rule.endpoint, {a: samples[a] for a in rule.arguments})
        found.append((rule.endpoint, url, methods))
    return sorted(found, key=lambda e: (e[0] in SIGN_OUT, e[0]))


def test_every_endpoint_declares_its_audience(app: Flask) -> None:
    undeclared = [e for e in app.view_functions if rule_for(app, e) is None]
    assert undeclared == []


def test_an_undeclared_endpoint_is_refused(app_factory, users) -> None:
    app = app_factory()

    @app.route("/forgotten")
    def forgotten() -> str:
        return "secret"

    client = app.test_client()
    client.post("/login", data={"email": users[Role.ADMIN].email,
                                "password": "correct-horse-battery"})
    assert client.get("/forgotten").status_code == 403
    with app.app_context():
        assert rule_for(app, "forgotten") is None


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.value if r else "anonymous")
def test_each_endpoint_answers_each_role_as_declared(app_factory, users, role) -> None:
    app = app_factory()
    from portal.audit import services as audit
    from portal.cases import services as cases
    from portal.customers import services as customers
    from portal.events import services as events
    from portal.extensions import db
    from portal.notices import services as notices

    with app.app_context():
        event = events.create_event(title="Outage", kind="incident", severity="sev2",
                                    cause="system")
        verification = audit.request_verification(None)
        db.session.commit()
        notice = notices.create_notice(event, audience="public", actor=users[Role.AGENT],
                                       content={"en": {"title": "Down", "body": "Call us"}})
        signoff = notices.request_signoff(notice, actor=users[Role.AGENT])
        pdf = notices.request_pdf(notice.latest_version, "draft", "zh_CN")
        db.session.commit()
        customer = customers.create_customer(event, {"external_ref": "K1", "name": "Kunde"},
                                             actor=users[Role.AGENT])
        case = cases.open_case(customer, cases.CaseInput("refund", "O-1", "10.00", "CNY",
                                                         "other", "", None),
                               actor=users[Role.AGENT])
        batch = customers.start_import(event, io.BytesIO(b"external_ref,name\nA,B\n"), "a.csv",
                                       actor=users[Role.AGENT])
        from portal.programmes import entitlements

        entitlement_import = entitlements.start_import(
            event, io.BytesIO(b"external_ref,order_ref,basis_amount,currency,basis_date\n"
                              b"K1,O-1,10.00,CNY,2026-01-01\n"), "e.csv", actor=users[Role.AGENT])
        from portal.mailings import unsubscribe
        from portal.mailings.models import Mailing

        # A started mailing, so the dashboard draws its delivery chart.
        mailing = Mailing(event_id=event.id, notice_id=notice.id,
                          version_id=notice.latest_version.id, status="sending",
                          created_at=customer.created_at, started_at=customer.created_at)
        db.session.add(mailing)
        db.session.commit()
        from portal.events.models import ChecklistTemplateItem, EventTask

        stakeholder = events.add_stakeholder(event, kind="supplier", name="Acme", contact="",
                                             actor=users[Role.ADMIN])
        from portal.cases import canned

        reply = canned.create(canned.CannedInput("Hello", "您好", "Hello"),
                              actor=users[Role.ADMIN])
        from werkzeug.datastructures import FileStorage

        from portal.cases import evidence
        from portal.main.demo_files import receipt_png

        proof = evidence.add_from_staff(case, FileStorage(io.BytesIO(receipt_png()), "r.png"),
                                        actor=users[Role.AGENT])
        from portal.cases import claims
        from portal.customers import links

        event.accepts_claims = True
        claim = claims.submit_public(
            event, claims.Claimant("Zhao Min", "zhao@example.com", "", "zh_CN"),
            claims.ClaimInput("refund", "WD-CLAIM-1", "12.00", "Order lost"))

        customer_link, _token = links.issue_personal(customer, sent_with="test")
        from tests.programme_mail_helpers import add_member, make_programme

        programme = make_programme(event)
        member = add_member(users, programme, "PM1", "10.00")
        member.status = "late"
        db.session.commit()
        # A payout batch prepared by another finance user (so finance and admins may release
        # it), and a file asked of it.
        from decimal import Decimal

        from portal.cases.models import CaseStatus
        from portal.customers import payout
        from portal.payouts import services as payouts
        from portal.payouts.models import PayoutFile
        from tests.payout_helpers import second_finance

        case.status, case.approved_amount = CaseStatus.APPROVED, Decimal("10.00")
        payout.confirm(customer, {"method": "original"}, None)
        payout_batch = payouts.prepare_batch(programme_id=None, currency="CNY",
                                             method="original", actor=second_finance())
        payout_file = PayoutFile(batch_id=payout_batch.id, format="csv", profile="generic")
        db.session.add(payout_file)
        db.session.flush()
        task = db.session.scalar(db.select(EventTask).where(EventTask.event_id == event.id))
        item = db.session.scalar(db.select(ChecklistTemplateItem))
        samples = {"user_id": str(users[Role.AGENT].id), "event_id": str(event.id),
                   "task_id": str(task.id), "state": "done", "item_id": str(item.id),
                   "stakeholder_id": str(stakeholder.id),
                   "mailing_id": str(mailing.id), "action": "pause",
                   "token": unsubscribe.unsubscribe_token(customer.id),
                   "verification_id": str(verification.id), "subject_type": "user",
                   "subject_id": str(users[Role.AGENT].id), "filename": "css/portal.css",
                   "notice_id": str(notice.id), "version_id": str(notice.latest_version.id),
                   "pdf_id": str(pdf.id), "request_id": str(signoff.id), "slug": notice.slug,
                   "customer_id": str(customer.id), "case_id": str(case.id),
                   "batch_id": str(batch.id), "postmortem_id": "1",
                   "archive_id": "1", "run_id": "1", "reply_id": str(reply.id),
                   "evidence_id": str(proof.id), "link_id": str(customer_link.id),
                   "claim_id": str(claim.id), "import_id": str(entitlement_import.id),
                   "programme_id": str(programme.id), "member_id": str(member.id),
                   "members": "launch", "payout_batch_id": str(payout_batch.id),
                   "payout_file_id": str(payout_file.id), "result_id": "1",
                   "code": "7K3QM-X9P2D", "queue": "default", "job_id": "no-such-job"}
        plan = [(e, url, m, rule_for(app, e)) for e, url, m in endpoints(app, samples)]

    client = app.test_client()
    checked = 0
    for endpoint, url, methods, rule in plan:
        if role is not None:  # each request with a fresh session, so no request undoes another
            client = app.test_client()
            client.post("/login", data={"email": users[role].email,
                                        "password": "correct-horse-battery"})
        for method in sorted(methods):
            data = {"locale": "en"} if endpoint == "main.set_language" else {}
            response = client.open(url, method=method, data=data)
            allowed = rule.allows(role)
            where = f"{method} {url} as {role or 'anonymous'} ({rule.describe()})"
            if allowed:
                assert response.status_code < 500 or (
                    endpoint in UNAVAILABLE_IS_AN_ANSWER and response.status_code == 503), where
                assert response.status_code not in (401, 403), where
                assert "/login" not in response.headers.get("Location", "") or (
                    endpoint in SIGN_OUT | {"main.index"}), where
            elif role is None:
                assert response.status_code == 302, where
                assert response.headers["Location"].startswith("/login"), where
            else:
                assert response.status_code == 403, where
            checked += 1
    assert checked >= 20


def test_access_requires_an_audience() -> None:
    with pytest.raises(ValueError):
        access()
    with pytest.raises(ValueError):
        access("superuser")
