"""What a customer does on their page besides writing: answer an offer, say how to be paid,
add a receipt, open a claim — each through /my with the customer's session, each landing on
the case or customer as the staff see it, each refusal shown by its field and changing
nothing."""

from __future__ import annotations

import io

from sqlalchemy import select

from portal.audit.models import AuditEntry, customer_actor
from portal.cases.models import Case, Evidence
from portal.cases.offer_models import OfferDecision
from portal.customers import payout
from portal.extensions import db
from portal.main.demo_files import receipt_png
from tests.case_helpers import make_case, make_customer
from tests.customer_helpers import open_page
from tests.offer_helpers import approved_case, event_requiring_acceptance


def test_the_customer_accepts_the_offer_on_their_page(app, users, client) -> None:
    case = approved_case(users, event_requiring_acceptance(users))
    db.session.commit()
    open_page(client, case.customer)
    page = client.get("/my").text
    offer_hash = page.split('name="offer_hash" value="')[1].split('"')[0]
    locale = page.split('name="locale" value="')[1].split('"')[0]
    refused = client.post(f"/my/cases/{case.id}/offer",
                          data={"decision": "accepted", "offer_hash": "0" * 64, "locale": locale})
    assert refused.status_code == 422
    assert db.session.scalar(select(OfferDecision)) is None
    done = client.post(f"/my/cases/{case.id}/offer",
                       data={"decision": "accepted", "offer_hash": offer_hash, "locale": locale})
    assert done.status_code == 303
    decision = db.session.scalar(select(OfferDecision))
    assert decision.decision == "accepted" and decision.offer_hash == offer_hash
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "offer.accepted")
                              .order_by(AuditEntry.id.desc()))
    assert entry.actor_label == customer_actor(case.customer_id)


def test_another_customers_case_is_not_found(app, users, client) -> None:
    case = approved_case(users, event_requiring_acceptance(users))
    other = make_customer(users, ref="K-OTHER", event=case.customer.event)
    db.session.commit()
    open_page(client, other)
    assert client.post(f"/my/cases/{case.id}/offer", data={"decision": "accepted"}
                       ).status_code == 404
    assert client.post(f"/my/cases/{case.id}/evidence",
                       data={"file": (io.BytesIO(receipt_png()), "r.png")}).status_code == 404


def test_payout_details_are_sealed_and_a_bad_iban_is_refused_by_its_field(
        app, users, client) -> None:
    customer = make_case(users).customer
    db.session.commit()
    open_page(client, customer)
    bad = client.post("/my/payout", data={"method": "bank", "holder": "Wang Fang",
                                          "bank": "ICBC", "account": "DE00 1234"})
    assert bad.status_code == 422 and 'class="error"' in bad.text
    assert "DE00 1234" not in bad.text  # the account is never echoed
    assert payout.view_for(customer) is None
    good = client.post("/my/payout", data={"method": "bank", "holder": "Wang Fang",
                                           "bank": "ICBC", "account": "DE89370400440532013000"})
    assert good.status_code == 303
    shown = client.get("/my").text
    assert "DE89370400440532013000" not in shown and "3000" in shown


def test_a_receipt_lands_on_the_case_and_a_polyglot_is_refused(app, users, client) -> None:
    case = make_case(users)
    db.session.commit()
    open_page(client, case.customer)
    polyglot = b"\x89PNG\r\n\x1a\n<html><script>alert(1)</script></html>"
    refused = client.post(f"/my/cases/{case.id}/evidence",
                          data={"file": (io.BytesIO(polyglot), "x.png")})
    assert refused.status_code == 422 and 'id="evidence-file-error"' in refused.text
    assert db.session.scalar(select(Evidence)) is None
    kept = client.post(f"/my/cases/{case.id}/evidence",
                       data={"file": (io.BytesIO(receipt_png()), "receipt.png")})
    assert kept.status_code == 303
    row = db.session.scalar(select(Evidence))
    assert row.case_id == case.id and row.uploader_kind == "customer"


def test_a_claim_from_the_page_becomes_a_case_and_a_duplicate_links_the_open_one(
        app, users, client) -> None:
    case = make_case(users, order_ref="WD-1")
    case.customer.event.accepts_claims = True
    db.session.commit()
    open_page(client, case.customer)
    assert 'action="/my/claim"' in client.get("/my").text
    duplicate = client.post("/my/claim", data={"kind": case.kind, "order_ref": "wd-1 ",
                                               "amount": "10.00", "description": "again"})
    assert duplicate.status_code == 422 and f"#case-{case.ref}" in duplicate.text
    new = client.post("/my/claim", data={"kind": "refund", "order_ref": "WD-2",
                                         "amount": "25.50", "description": "Lost order"})
    assert new.status_code == 303
    opened = db.session.scalar(select(Case).where(Case.order_ref == "WD-2"))
    assert opened.source == "customer" and opened.status == "new"
    assert opened.customer_id == case.customer_id


def test_every_customer_action_is_audited_as_the_customer(app, users, client) -> None:
    case = make_case(users)
    db.session.commit()
    open_page(client, case.customer)
    client.post("/my/payout", data={"method": "original"})
    client.post(f"/my/cases/{case.id}/evidence",
                data={"file": (io.BytesIO(receipt_png()), "receipt.png")})
    actors = {e.action: e.actor_label for e in db.session.scalars(select(AuditEntry).where(
        AuditEntry.action.in_(["customer.payout_details", "case.evidence"])))}
    assert actors == {"customer.payout_details": customer_actor(case.customer_id),
                      "case.evidence": customer_actor(case.customer_id)}


def test_the_demo_prints_a_link_to_a_customer_with_an_offer_to_accept(app, client) -> None:
    from urllib.parse import urlsplit

    from portal.main.cli import seed_demo

    text = seed_demo()
    line = next(line for line in text.splitlines() if "MEM-20001" in line)
    assert client.get(urlsplit(line.split(": ", 1)[1].strip()).path).status_code == 303
    page = client.get("/my").text
    assert 'name="offer_hash"' in page and 'value="accepted"' in page


def test_a_claim_keeps_its_receipt_on_the_new_case_or_nothing_at_all(app, users, client) -> None:
    customer = make_case(users, order_ref="WD-1").customer
    customer.event.accepts_claims = True
    db.session.commit()
    open_page(client, customer)
    claim = {"kind": "refund", "order_ref": "WD-3", "amount": "40.00", "description": "Lost"}
    polyglot = b"\x89PNG\r\n\x1a\n<html><script>alert(1)</script></html>"
    refused = client.post("/my/claim", data={**claim, "file": (io.BytesIO(polyglot), "x.png")})
    assert refused.status_code == 422 and 'id="claim-file-error"' in refused.text
    assert db.session.scalar(select(Case).where(Case.order_ref == "WD-3")) is None
    kept = client.post("/my/claim",
                       data={**claim, "file": (io.BytesIO(receipt_png()), "receipt.png")})
    assert kept.status_code == 303
    case = db.session.scalar(select(Case).where(Case.order_ref == "WD-3"))
    [row] = db.session.scalars(select(Evidence).where(Evidence.case_id == case.id)).all()
    assert row.uploader_kind == "customer"
