"""The data lifecycle of a closed event: the export archive through the real worker and its
standalone verifier, the retention dry run and its confirmed erasure, and the erasure of one
customer everywhere its personal data was, with the audit chain intact."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from portal import uow
from portal.accounts import Role
from portal.audit import services as audit
from portal.audit.models import AuditEntry
from portal.cases import search
from portal.cases import services as cases
from portal.cases.models import Case, CaseNote, Payment
from portal.customers import services as customers
from portal.customers.models import Customer
from portal.events import services as event_services
from portal.events.models import Event, TimelineEntry
from portal.extensions import db
from portal.i18n import N_
from portal.lifecycle import archive as fmt
from portal.lifecycle import erasure, retention
from portal.lifecycle.cli import lifecycle_cli
from portal.lifecycle.models import ArchiveStatus, EventArchive, RetentionRun, RetentionRunStatus
from portal.mailings import services as mailings
from portal.mailings.models import MailingRecipient
from portal.models import utcnow
from portal.notices import pdf as notice_pdf
from portal.notices import services as notice_services
from portal.signoffs import services as signoffs
from portal.signoffs.models import SignoffRequest
from tests.case_helpers import make_case
from tests.notice_helpers import make_event, make_notice, publish
from tests.test_mailings import draft

NAME = "Zhang Weiming"
EMAIL = "zhang.weiming@example.com"
PHONE = "+86 138 0000 7777"


def close(event: Event, days_ago: float = 0) -> None:
    event.status = "closed"
    event.closed_at = utcnow() - timedelta(days=days_ago)
    db.session.commit()


def person(users, event, ref: str = "K-900", name: str = NAME, email: str = EMAIL,
           phone: str = PHONE) -> Customer:
    return customers.create_customer(event, {
        "external_ref": ref, "name": name, "email": email, "phone": phone,
        "company": "Zhang Trading", "tags": "vip", "locale": "en"}, actor=users[Role.AGENT])


@pytest.fixture
def scene(app, users):
    """A published notice, a customer with a paid case above the sign-off threshold (legal
    approved a snapshot naming them), a small case mentioning them, a reply, a note and a
    mailing with recipient rows."""
    event = make_event()
    notice = make_notice(users, event)
    publish(notice, users)
    customer = person(users, event)
    other = person(users, event, ref="K-901", name="Li Na", email="li.na@example.com",
                   phone="")
    big = make_case(users, amount="6800.00", customer=customer, order_ref="O-BIG")
    cases.change_status(big, "start", actor=users[Role.AGENT])
    cases.propose(big, actor=users[Role.AGENT])
    signoffs.decide(big.signoff_id, "approved", "", actor=users[Role.LEGAL])
    cases.record_payment(big, amount="6800.00", payout_ref="PAY-0001",
                         actor=users[Role.AGENT])
    small = cases.open_case(customer, cases.CaseInput(
        "compensation", "O-SMALL", "50.00", "CNY", "other",
        f"{NAME} called from {PHONE}; write to {EMAIL.upper()}", None),
        actor=users[Role.AGENT])
    cases.add_note(small, f"Spoke to {NAME} ({EMAIL}).", actor=users[Role.AGENT])
    cases.add_reply(small, f"Dear {NAME}, your compensation is on its way.",
                    actor=users[Role.AGENT])
    mailing = draft(users, event, notice)
    mailings.start(mailing, actor=users[Role.AGENT])
    return {"event": event, "notice": notice, "customer": customer, "other": other,
            "big": big, "small": small, "mailing": mailing}


def trail_text() -> str:
    return "\n".join(audit.canonical_json([e.summary, e.message_params, e.before, e.after])
                     for e in db.session.scalars(select(AuditEntry)))


# --- the audit trail holds no personal data --------------------------------------------------


def test_audit_entries_hold_keyed_digests_not_personal_data(app, users, scene) -> None:
    customer = scene["customer"]
    text = trail_text()
    for value in (NAME, EMAIL, PHONE, "Zhang Trading", "K-900"):
        assert value not in text
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "customer.create",
                                                       AuditEntry.subject_id == str(customer.id)))
    assert entry.after["locale"] == "en"
    assert entry.after["email"] == customer.audit_digest(EMAIL)
    assert entry.after["email"].startswith("hmac-sha256:")
    # Another customer with the same e-mail gets another digest (its own salt).
    twin = person(users, make_event(), email=EMAIL)
    assert twin.audit_digest(EMAIL) != customer.audit_digest(EMAIL)


def test_archive_hash_is_the_audit_hash(app, users, scene) -> None:
    audit.record("case.paid", "payout_result", 1, N_("%(count)d cases paid", count=2),
                 concerns={"case": [9, 10]})
    for entry in db.session.scalars(select(AuditEntry)):
        exported = {name: getattr(entry, name)
                    for name in (*fmt.HASHED_FIELDS, *fmt.MESSAGE_FIELDS, fmt.CONCERNS)}
        exported["created_at"] = entry.created_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        assert fmt.entry_hash(exported) == audit.compute_hash(entry) == entry.hash


# --- export ---------------------------------------------------------------------------------


def test_only_a_closed_event_can_be_exported(app, users, client, auth) -> None:
    event = make_event()
    auth.login(Role.ADMIN)
    response = client.post(f"/lifecycle/event/{event.id}/export", follow_redirects=True)
    assert "Only a closed event can be exported." in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count(EventArchive.id))) == 0
    close(event)
    auth.logout()
    auth.login(Role.AGENT)
    assert client.post(f"/lifecycle/event/{event.id}/export").status_code == 403
    assert client.get(f"/lifecycle/event/{event.id}").status_code == 200


def _rewrite(source: Path, target: Path, name: str, change) -> None:
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as out:
        for item in src.namelist():
            data = src.read(item)
            out.writestr(item, change(data) if item == name else data)


def test_export_round_trip_through_the_worker(app, users, scene, client, auth, run_worker,
                                              runner, tmp_path: Path) -> None:
    event = scene["event"]
    pdf_row = notice_services.request_pdf(scene["notice"].published_version, "signed",
                                           "zh_CN")
    db.session.commit()
    notice_pdf.PIPELINE.queue(pdf_row.id)
    close(event)
    auth.login(Role.ADMIN)
    response = client.post(f"/lifecycle/event/{event.id}/export")
    assert response.status_code == 302
    row = db.session.scalar(select(EventArchive))
    assert row.status == "queued"
    export_entry = db.session.scalar(select(AuditEntry).where(
        AuditEntry.action == "event.export"))
    assert export_entry.subject_id == str(event.id)
    polling = client.get(f"/lifecycle/archives/{row.id}", headers={"HX-Request": "true"})
    assert 'hx-trigger="every 1s"' in polling.get_data(as_text=True)

    run_worker()
    row = db.session.get(EventArchive, row.id)
    assert row.status == ArchiveStatus.DONE, row.error
    done = client.get(f"/lifecycle/archives/{row.id}", headers={"HX-Request": "true"})
    assert "every 1s" not in done.get_data(as_text=True)
    full = client.get(f"/lifecycle/archives/{row.id}").get_data(as_text=True)
    assert row.sha256 in full and "Download the archive" in full
    download = client.get(f"/lifecycle/archives/{row.id}/download")
    assert download.status_code == 200
    path = tmp_path / "archive.zip"
    path.write_bytes(download.data)
    assert fmt.verify_archive(path) == []
    assert db.session.scalar(select(AuditEntry).where(
        AuditEntry.action == "event.export_download")) is not None

    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        record = json.loads(zf.read("event.json"))
        audit_lines = [json.loads(line) for line in zf.read("audit.jsonl").splitlines()]
        customers_csv = zf.read("customers.csv").decode("utf-8-sig")
    assert {"manifest.json", "event.json", "customers.csv", "cases.csv", "payments.csv",
            "mailing_recipients.csv", "audit.jsonl"} <= names
    assert f"pdfs/{db.session.get(type(pdf_row), pdf_row.id).sha256}.pdf" in names
    assert record["event"]["id"] == event.id
    assert [len(n["versions"]) for n in record["notices"]] == [1]
    assert len(record["checklist"]) == 10 and record["checklist"][0]["event_id"] == event.id
    assert record["timeline"] == [] and record["postmortem"] is None
    big = next(c for c in record["cases"] if c["id"] == scene["big"].id)
    assert big["payment"]["amount"] == "6800.00" and big["amount"] == "6800.00"
    assert {s["subject_type"] for s in record["signoffs"]} == {"notice_version",
                                                               "case_decision"}
    assert all(s["snapshot_hash"] for s in record["signoffs"])
    assert len(record["mailings"][0]["recipients"]) == 2
    assert "audit_salt" not in record["customers"][0]
    assert NAME in customers_csv
    actions = {line["action"] for line in audit_lines}
    assert {"event.create", "customer.create", "case.open", "signoff.approved",
            "mailing.start", "event.export"} <= actions
    assert "user.create" not in actions  # only the event and its subjects

    # A changed file, or a changed audit entry with a manifest made to match, is found.
    tampered = tmp_path / "tampered-file.zip"
    _rewrite(path, tampered, "cases.csv", lambda d: d.replace(b"6800.00", b"9800.00"))
    assert fmt.verify_archive(tampered) == ["cases.csv: SHA-256 does not match the manifest"]

    def forge_entry(data: bytes) -> bytes:
        lines = data.decode().splitlines()
        entry = json.loads(lines[0])
        entry["summary"] = "nothing happened"
        lines[0] = fmt.canonical_json(entry)
        return ("\n".join(lines) + "\n").encode()

    forged = tmp_path / "forged-entry.zip"
    _rewrite(path, forged, "audit.jsonl", forge_entry)
    fixed = tmp_path / "forged-entry-and-manifest.zip"
    with zipfile.ZipFile(forged) as zf:
        new_sha = __import__("hashlib").sha256(zf.read("audit.jsonl")).hexdigest()

    def fix_manifest(data: bytes) -> bytes:
        manifest = json.loads(data)
        for item in manifest["files"]:
            if item["path"] == "audit.jsonl":
                item["sha256"] = new_sha
        return json.dumps(manifest).encode()

    _rewrite(forged, fixed, "manifest.json", fix_manifest)
    problems = fmt.verify_archive(fixed)
    assert problems == [f"audit entry {audit_lines[0]['id']}: content does not match its hash"]

    result = runner.invoke(lifecycle_cli, ["verify-archive", str(path)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(lifecycle_cli, ["verify-archive", str(fixed)])
    assert result.exit_code == 1 and "does not match its hash" in result.output

    # Erasing a customer of the event deletes the archive, which still holds their data.
    erasure.erase_on_request(scene["customer"], "request #1", actor=users[Role.ADMIN])
    uow.commit()  # the request's boundary: the files go once the erasure is committed
    row = db.session.get(EventArchive, row.id)
    assert row.status == ArchiveStatus.PURGED
    assert not (Path(app.instance_path) / row.path).exists()
    assert client.get(f"/lifecycle/archives/{row.id}/download").status_code == 404


def test_consecutive_entries_must_link(tmp_path: Path) -> None:
    def entry(entry_id: int, prev: str) -> dict:
        e = {"id": entry_id, "created_at": "2026-01-01T00:00:00.000000Z", "actor_id": None,
             "actor_label": "system", "action": "x", "subject_type": "event", "subject_id": "1",
             "summary": "s", "before": None, "after": None, "ip": None, "prev_hash": prev}
        e["hash"] = fmt.entry_hash(e)
        return e

    first = entry(1, fmt.GENESIS_HASH)
    second = entry(2, "f" * 64)  # hashes correctly, but was not chained to entry 1

    def build(name: str, entries: list[dict]) -> Path:
        target = tmp_path / name
        with target.open("wb") as out:
            writer = fmt.ArchiveWriter(out)
            writer.add(fmt.AUDIT, "".join(fmt.canonical_json(e) + "\n"
                                          for e in entries).encode())
            writer.close({})
        return target

    assert fmt.verify_archive(build("ok.zip", [first, entry(2, first["hash"])])) == []
    assert fmt.verify_archive(build("bad.zip", [first, second])) == [
        "audit entry 2: does not link to entry 1 before it"]


# --- retention --------------------------------------------------------------------------------


def test_retention_dry_run_then_confirmed_erasure(app, users, client, auth, run_worker) -> None:
    old, recent, still_open = (make_event(title=t) for t in ("Old", "Recent", "Open"))
    for event, prefix in ((old, "O"), (recent, "R"), (still_open, "P")):
        for i in range(2):
            person(users, event, ref=f"{prefix}-{i}", name=f"{prefix} person {i}",
                   email=f"{prefix.lower()}{i}@example.com")
    close(old, days_ago=40)
    close(recent, days_ago=5)
    auth.login(Role.ADMIN)
    response = client.post("/lifecycle/retention", data={"days": "30"})
    assert response.status_code == 302
    assert retention.policy().days == 30
    assert db.session.scalar(select(AuditEntry).where(
        AuditEntry.action == "settings.retention")).after == {"days": 30}

    response = client.post("/lifecycle/retention/dry-run")
    run = db.session.scalar(select(RetentionRun))
    assert response.headers["Location"].endswith(f"/lifecycle/retention/runs/{run.id}")
    assert [e["event_id"] for e in run.report["events"]] == [old.id]
    assert run.report["events"][0]["customers"] == 2
    page = client.get(f"/lifecycle/retention/runs/{run.id}").get_data(as_text=True)
    assert "Old" in page and "Recent" not in page and "hx-confirm" in page
    assert db.session.scalar(select(func.count(Customer.id)).where(
        Customer.erased_at.is_not(None))) == 0  # a dry run erases nothing

    assert client.post(f"/lifecycle/retention/runs/{run.id}/confirm").status_code == 302
    run_worker()
    run = db.session.get(RetentionRun, run.id)
    assert run.status == RetentionRunStatus.DONE and run.erased_count == 2
    erased = db.session.scalars(select(Customer).where(Customer.erased_at.is_not(None))).all()
    assert {c.event_id for c in erased} == {old.id}
    assert all(c.name == f"Erased customer #{c.id}" and c.email == "" for c in erased)
    assert db.session.scalar(select(func.count(AuditEntry.id)).where(
        AuditEntry.action == "customer.erase")) == 2
    assert audit.verify_chain().ok
    # The daily job prepares a report only when something is due, and never erases.
    assert retention.prepare_daily_report() is None


def test_the_daily_job_only_prepares_a_report(app, users) -> None:
    event = make_event()
    person(users, event)
    close(event, days_ago=400)
    run = retention.prepare_daily_report()
    assert run.status == "proposed" and run.created_by_id is None
    assert retention.prepare_daily_report() is None  # one awaits review already
    assert db.session.scalar(select(Customer.erased_at)) is None


# --- erasure of one customer -----------------------------------------------------------------


def test_single_erasure_needs_an_admin_and_a_reason(app, users, client, auth) -> None:
    customer = person(users, make_event())
    url = f"/lifecycle/customers/{customer.id}/erase"
    auth.login(Role.AGENT)
    assert client.post(url, data={"reason": "asked"}).status_code == 403
    page = client.get(f"/customers/{customer.id}").get_data(as_text=True)
    assert "Erase personal data" not in page
    auth.logout()
    auth.login(Role.ADMIN)
    page = client.get(f"/customers/{customer.id}").get_data(as_text=True)
    assert "Erase personal data" in page and "hx-confirm" in page
    response = client.post(url, data={"reason": "  "})
    assert response.status_code == 422
    assert 'id="reason-error"' in response.get_data(as_text=True)
    assert db.session.get(Customer, customer.id).erased_at is None


def test_erasure_removes_personal_data_everywhere(app, users, scene, client, auth) -> None:
    customer, other, big, small = (scene[k] for k in ("customer", "other", "big", "small"))
    event = scene["event"]
    payment_before = db.session.scalar(select(Payment).where(Payment.case_id == big.id))
    paid, payout = payment_before.amount, payment_before.payout_ref
    signoff_hash = db.session.get(SignoffRequest, big.signoff_id).snapshot_hash
    for q in (NAME, "zhang.weiming"):
        assert len(db.session.scalars(search.CaseFilter(q=q).statement()).all()) == 2
    entry = event_services.add_timeline_entry(event, occurred_at=None,
                                              text=f"{NAME} (K-900) called the hotline",
                                              actor=users[Role.AGENT])

    auth.login(Role.ADMIN)
    response = client.post(f"/lifecycle/customers/{customer.id}/erase",
                           data={"reason": "Erasure request, ticket 77"})
    assert response.status_code == 302
    db.session.expire_all()
    customer = db.session.get(Customer, customer.id)
    assert customer.name == f"Erased customer #{customer.id}"
    assert customer.external_ref.startswith("erased-") and len(customer.external_ref) == 19
    assert customer.external_ref == erasure.pseudonym_ref("K-900")
    assert (customer.email, customer.phone, customer.company, customer.tags) == ("", "", "", [])
    assert customer.audit_salt is None and customer.erased_at is not None
    assert customer.event_id == event.id

    recipients = {r.customer_id: r.email for r in db.session.scalars(select(MailingRecipient))}
    assert recipients == {customer.id: "[erased]", other.id: "li.na@example.com"}
    assert db.session.scalar(select(MailingRecipient.status).where(
        MailingRecipient.customer_id == customer.id)) == "skipped"  # never mailed now
    notes = db.session.scalars(select(CaseNote).where(CaseNote.case_id == small.id)).all()
    reply = next(n for n in notes if n.kind == "reply")
    internal = next(n for n in notes if n.kind == "internal")
    assert (reply.body, reply.to_address) == ("[erased]", "[erased]")
    assert internal.body == "Spoke to [erased] ([erased])."
    assert db.session.get(Case, small.id).description == (
        "[erased] called from [erased]; write to [erased]")
    assert db.session.get(TimelineEntry, entry.id).text == "[erased] ([erased]) called the hotline"
    request = db.session.get(SignoffRequest, big.signoff_id)
    assert request.snapshot["customer"] == {"external_ref": customer.external_ref,
                                            "name": "[erased]"}
    assert NAME not in json.dumps(request.snapshot, ensure_ascii=False)
    assert request.snapshot_hash == signoff_hash  # the historic proof stays

    # Amounts and payments are kept.
    assert db.session.get(Case, big.id).amount == Decimal("6800.00")
    payment = db.session.scalar(select(Payment).where(Payment.case_id == big.id))
    assert (payment.amount, payment.payout_ref) == (paid, payout)

    # Searches no longer find the person.
    for q in (NAME, "zhang.weiming", "Zhang Trading"):
        assert db.session.scalars(search.CaseFilter(q=q).statement()).all() == []
        page = client.get(f"/customers/event/{event.id}", query_string={"q": q})
        assert f"/customers/{customer.id}\"" not in page.get_data(as_text=True)
    assert db.session.scalars(search.CaseFilter(q="Li Na").statement()).all() == []  # no case
    found = client.get(f"/customers/event/{event.id}", query_string={"q": "li.na"})
    assert f"/customers/{other.id}\"" in found.get_data(as_text=True)

    # The pseudonym shows on the customer page; the audit entry is there; the chain holds.
    page = client.get(f"/customers/{customer.id}").get_data(as_text=True)
    assert f"Erased customer #{customer.id}" in page and NAME not in page
    assert "Erasure request, ticket 77" in page  # the reason, shown from the customer's row
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "customer.erase"))
    assert customer.erasure_reason == "Erasure request, ticket 77"  # on the row, not the trail
    assert entry.subject_id == str(customer.id) and "reason" not in entry.after
    assert entry.after["reason_sha256"] == hashlib.sha256(
        b"Erasure request, ticket 77").hexdigest()
    assert entry.after["mailing_recipients"] == 1 and entry.after["signoffs"] == 1
    assert audit.verify_chain().ok
    text = trail_text()
    for value in (NAME, EMAIL, PHONE, "li.na@example.com", "Li Na"):
        assert value not in text
    # An erased customer is erased once, and cannot be edited back.
    again = client.post(f"/lifecycle/customers/{customer.id}/erase", data={"reason": "again"})
    assert again.status_code == 200
    with pytest.raises(Exception, match="erased"):
        customers.update_customer(customer, {"external_ref": "X", "name": "Y"},
                                  actor=users[Role.ADMIN])


def test_the_event_page_shows_export_and_retention(app, users, client, auth) -> None:
    event = make_event(title="Closed outage")
    person(users, event)
    close(event, days_ago=10)
    auth.login(Role.ADMIN)
    page = client.get(f"/lifecycle/event/{event.id}").get_data(as_text=True)
    assert "Export the record" in page and "365 days after closing" in page
    assert client.get("/lifecycle/retention").status_code == 200
    auth.logout()
    auth.login(Role.LEGAL)
    page = client.get(f"/lifecycle/event/{event.id}").get_data(as_text=True)
    assert "Export the record" not in page
    assert client.get("/lifecycle/retention").status_code == 403


def test_erasure_of_an_imported_customer(app, users) -> None:
    """Customers from the bulk CSV import get their own salt too."""
    event = make_event()
    batch = customers.start_import(event, io.BytesIO(
        b"external_ref,name,email\nA-1,Wu Lei,wu@example.com\nA-2,Sun Li,sun@example.com\n"),
        "people.csv", actor=users[Role.AGENT])
    customers.validate_import(batch.id)
    customers.confirm_import(db.session.get(type(batch), batch.id), actor=users[Role.AGENT])
    customers.run_import(batch.id)
    salts = db.session.scalars(select(Customer.audit_salt)).all()
    assert len(salts) == 2 and all(salts) and salts[0] != salts[1]
    wu = db.session.scalar(select(Customer).where(Customer.name == "Wu Lei"))
    erasure.erase_on_request(wu, "asked by phone", actor=users[Role.ADMIN])
    uow.commit()  # the request's boundary: the files go once the erasure is committed
    assert not customers.upload_path(batch).exists()  # the uploaded CSV named them


def test_erasure_pseudonyms_do_not_change_when_the_secret_key_is_rotated(app) -> None:
    before = erasure.pseudonym_ref("K-900")
    app.config.update(SECRET_KEY="the-new-key", SECRET_KEY_FALLBACKS=["test-secret"])
    assert erasure.pseudonym_ref("K-900") == before
    app.config["ERASURE_KEY"] = "another erasure key"  # the pseudonyms' own key decides
    assert erasure.pseudonym_ref("K-900") != before
