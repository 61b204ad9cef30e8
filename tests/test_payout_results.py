"""The bank's result files of a payout batch (CSV, camt.054, pain.002) applied through the real
worker, and the reconciliation of batches and programmes to the cent."""

from __future__ import annotations

import io
import re
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import func, select, update

from portal.accounts import Role
from portal.audit import services as audit
from portal.audit.models import AuditEntry
from portal.cases.models import Case, CaseStatus, Payment
from portal.extensions import db
from portal.payouts import reconciliation
from portal.payouts.models import BatchStatus, PayoutBatch, PayoutLine, PayoutResult
from portal.programmes.models import MemberStatus, Programme, ProgrammeMember
from tests.case_helpers import make_case, make_customer
from tests.notice_helpers import make_event

AMOUNTS = ("100.10", "250.00", "0.05")


def approved_case(users, event, n: int, amount: str, programme: Programme | None = None) -> Case:
    customer = make_customer(users, ref=f"K-{n}", event=event, email=f"k{n}@example.com")
    case = make_case(users, amount=amount, customer=customer, order_ref=f"O-{n}")
    case.status, case.approved_amount = CaseStatus.APPROVED, Decimal(amount)
    if programme is not None:
        case.programme_id = programme.id
        db.session.add(ProgrammeMember(programme_id=programme.id, customer_id=customer.id,
                                       case_id=case.id, amount=Decimal(amount),
                                       currency="CNY", status=MemberStatus.CREATED))
    db.session.flush()
    return case


def make_batch(users, cases: list[Case], ref: str, programme: Programme | None = None,
               status: str = BatchStatus.RELEASED) -> PayoutBatch:
    batch = PayoutBatch(ref=ref, currency="CNY", method="bank", status=status,
                        programme_id=programme.id if programme else None,
                        line_count=len(cases),
                        control_sum=sum((c.approved_amount for c in cases), Decimal("0.00")),
                        prepared_by_id=users[Role.FINANCE].id,
                        released_by_id=users[Role.ADMIN].id)
    db.session.add(batch)
    db.session.flush()
    for i, case in enumerate(cases, start=1):
        db.session.add(PayoutLine(batch_id=batch.id, case_id=case.id,
                                  end_to_end_id=f"{ref}-{i:04d}", amount=case.approved_amount,
                                  currency="CNY"))
    db.session.commit()
    return batch


def make_programme(event) -> Programme:
    programme = Programme(event_id=event.id, name_zh="退款方案", name_en="Refund programme",
                          kind="refund", currency="CNY", mode="proactive",
                          calculation_date=date(2026, 1, 1), rules={}, status="running")
    db.session.add(programme)
    db.session.flush()
    return programme


@pytest.fixture
def scene(app, users):
    event = make_event()
    cases = [approved_case(users, event, i, amount) for i, amount in enumerate(AMOUNTS)]
    batch = make_batch(users, cases, "PB-0001")
    return {"event": event, "cases": cases, "batch": batch}


def csv_file(rows: list[tuple[str, ...]], header: str = "end_to_end_id,status,amount,currency,"
             "bank_ref,reason", encoding: str = "utf-8") -> bytes:
    return ("\n".join([header, *(",".join(r) for r in rows)]) + "\n").encode(encoding)


def upload(client, batch: PayoutBatch, data: bytes, name: str = "result.csv"):
    return client.post(f"/payouts/batches/{batch.id}/results",
                       data={"file": (io.BytesIO(data), name)},
                       content_type="multipart/form-data")


def apply(client, auth, run_worker, batch: PayoutBatch, data: bytes,
          name: str = "result.csv") -> PayoutResult:
    auth.login(Role.FINANCE)
    response = upload(client, batch, data, name)
    assert response.status_code == 302, response.get_data(as_text=True)
    run_worker()
    db.session.expire_all()
    return db.session.scalars(select(PayoutResult).order_by(PayoutResult.id.desc())).first()


def text(response) -> str:
    """The page's text without its tags (values people typed are wrapped in spans)."""
    return re.sub(r"<[^>]+>", "", response.get_data(as_text=True))


def lines(batch: PayoutBatch) -> list[PayoutLine]:
    return list(db.session.scalars(select(PayoutLine).where(PayoutLine.batch_id == batch.id)
                                   .order_by(PayoutLine.id)))


def all_paid_csv(batch: PayoutBatch) -> bytes:
    return csv_file([(line.end_to_end_id, "paid", str(line.amount), "CNY", f"BK{line.id}", "")
                     for line in lines(batch)])


# --- CSV --------------------------------------------------------------------------------------


def test_paid_csv_pays_the_cases_closes_the_batch_and_a_second_import_changes_nothing(
        app, users, client, auth, run_worker, scene) -> None:
    batch = scene["batch"]
    result = apply(client, auth, run_worker, batch, all_paid_csv(batch))
    assert result.status == "done", result.error
    assert (result.format, result.paid_count, result.rejected_count) == ("csv", 3, 0)
    assert result.problems == []
    for case, line in zip(scene["cases"], lines(batch), strict=True):
        assert case.status == CaseStatus.PAID
        assert case.payment.amount == line.amount and case.payment.payout_ref == \
            line.end_to_end_id
        assert line.status == "paid" and line.bank_ref == f"BK{line.id}"
        assert line.result_id == result.id
    assert batch.status == BatchStatus.CLOSED
    assert db.session.scalar(select(AuditEntry).where(
        AuditEntry.action == "payout_batch.closed")) is not None
    # One entry for the chunk, on the result file, concerning every case it paid: each
    # case's history shows it, and the chain check holds the index to the hashed list.
    paid_entry = db.session.scalars(select(AuditEntry).where(
        AuditEntry.action == "case.paid")).one()
    assert (paid_entry.subject_type, paid_entry.subject_id) == ("payout_result", str(result.id))
    assert paid_entry.actor_id == users[Role.FINANCE].id
    assert paid_entry.concerns == {"case": sorted((str(c.id) for c in scene["cases"]),
                                                  key=lambda s: (len(s), s))}
    assert sorted(p[0] for p in paid_entry.after["payments"]) == sorted(
        c.id for c in scene["cases"])
    for case in scene["cases"]:
        assert paid_entry.id in [e.id for e in audit.history("case", case.id)]
        page = text(client.get(f"/cases/{case.id}"))
        assert f"result file {result.id}: 3 cases paid" in page
    assert audit.verify_chain().ok
    assert db.session.scalar(select(AuditEntry).where(
        AuditEntry.action == "payout_result.applied")).after["paid"] == 3
    page = text(client.get(f"/payouts/results/{result.id}"))
    assert "no problems" in page and result.sha256 in page

    again = apply(client, auth, run_worker, batch, all_paid_csv(batch))
    assert (again.status, again.paid_count, again.rejected_count) == ("done", 0, 0)
    assert [p["kind"] for p in again.problems] == ["unchanged"]
    assert db.session.scalar(select(func.count(Payment.id))) == 3
    page = text(client.get(f"/payouts/results/{again.id}"))
    assert "3 line(s) already recorded as the file reports them: nothing changed." in page


def test_a_rejected_line_goes_back_to_the_queue_with_the_reason(
        app, users, client, auth, run_worker, scene) -> None:
    batch = scene["batch"]
    first, second, _third = lines(batch)
    data = csv_file([(first.end_to_end_id, "paid", "100.10", "CNY", "BK1", ""),
                     (second.end_to_end_id, "rejected", "250.00", "CNY", "BK2", "AC04"),
                     ("PB-0001-9999", "paid", "1.00", "CNY", "BK9", "")])
    result = apply(client, auth, run_worker, batch, data)
    assert (result.paid_count, result.rejected_count) == (1, 1)
    assert [(p["kind"], p["end_to_end_id"]) for p in result.problems] == [
        ("unknown", "PB-0001-9999")]
    db.session.refresh(second)
    assert (second.status, second.reason) == ("rejected", "AC04")
    rejected_case = scene["cases"][1]
    assert rejected_case.status == CaseStatus.APPROVED and rejected_case.payment is None
    entry = db.session.scalar(select(AuditEntry).where(
        AuditEntry.action == "case.payout_rejected"))
    assert entry.subject_id == str(rejected_case.id) and entry.after["reason_code"] == "AC04"
    # Back in the queue: the case may be put in another batch (the live-line index allows it).
    again = make_batch(users, [rejected_case], "PB-0002")
    assert lines(again)[0].case_id == rejected_case.id
    # The third line is still pending: the first batch stays released.
    assert batch.status == BatchStatus.RELEASED
    page = text(client.get(f"/payouts/results/{result.id}"))
    assert "No line of this batch has the end-to-end id PB-0001-9999" in page
    zh = text(client.get(f"/payouts/results/{result.id}?lang=zh_CN"))
    assert "本批次没有端到端编号为 PB-0001-9999 的明细" in zh


def test_a_file_for_another_batch_is_refused_whole(app, users, client, auth, run_worker,
                                                   scene) -> None:
    other = make_batch(users, [approved_case(users, scene["event"], 50, "9.99")], "PB-0050")
    data = csv_file([(line.end_to_end_id, "paid", "9.99", "CNY", "BK", "")
                     for line in lines(other)])
    result = apply(client, auth, run_worker, scene["batch"], data)
    assert result.status == "failed"
    page = text(client.get(f"/payouts/results/{result.id}"))
    assert "This result file is for batch PB-0050" in page and "nothing was applied" in page
    assert db.session.scalar(select(func.count(Payment.id))) == 0
    assert {line.status for line in lines(other)} == {"pending"}
    # A file that names another batch is refused too, even with this batch's lines.
    named = csv_file([(line.end_to_end_id, "paid", str(line.amount), "CNY", "B", "", "PB-0050")
                      for line in lines(scene["batch"])],
                     header="end_to_end_id,status,amount,currency,bank_ref,reason,batch_ref")
    result = apply(client, auth, run_worker, scene["batch"], named)
    assert result.status == "failed" and "PB-0050" in result.error
    assert db.session.scalar(select(func.count(Payment.id))) == 0


def test_an_amount_that_differs_is_refused_and_reported(app, users, client, auth, run_worker,
                                                        scene) -> None:
    batch = scene["batch"]
    first, second, _third = lines(batch)
    data = csv_file([(first.end_to_end_id, "paid", "100.11", "CNY", "BK1", ""),
                     (second.end_to_end_id, "paid", "250.00", "USD", "BK2", "")])
    result = apply(client, auth, run_worker, batch, data)
    assert result.status == "done" and result.paid_count == 0
    assert [p["kind"] for p in result.problems] == ["amount_differs", "amount_differs"]
    assert {line.status for line in lines(batch)} == {"pending"}
    assert db.session.scalar(select(func.count(Payment.id))) == 0
    page = text(client.get(f"/payouts/results/{result.id}"))
    assert "Refused: the file says 100.11 CNY" in page


def test_broken_files_are_refused_whole_with_a_clear_message(app, users, client, auth,
                                                             run_worker, scene) -> None:
    batch = scene["batch"]
    first = lines(batch)[0]
    bad_status = csv_file([(first.end_to_end_id, "maybe", "100.10", "CNY", "", "")])
    result = apply(client, auth, run_worker, batch, bad_status)
    assert result.status == "failed"
    page = text(client.get(f"/payouts/results/{result.id}"))
    assert "Line 2: the status maybe is neither paid nor rejected." in page
    entity = (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
              b'<Document><CstmrPmtStsRpt>&x;</CstmrPmtStsRpt></Document>')
    result = apply(client, auth, run_worker, batch, entity, "r.xml")
    assert result.status == "failed" and "DTD" in result.error
    assert {line.status for line in lines(batch)} == {"pending"}
    # A batch not released takes no result.
    prepared = make_batch(users, [approved_case(users, scene["event"], 60, "5.00")],
                          "PB-0060", status=BatchStatus.PREPARED)
    response = upload(client, prepared, bad_status)
    assert response.status_code == 422
    assert "not released" in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count(PayoutResult.id)).where(
        PayoutResult.batch_id == prepared.id)) == 0


def test_gb18030_csv_with_chinese_statuses(app, users, client, auth, run_worker,
                                           scene) -> None:
    batch = scene["batch"]
    first, second, third = lines(batch)
    data = csv_file([(first.end_to_end_id, "成功", "100.10", "CNY", "银行1", ""),
                     (second.end_to_end_id, "退回", "250.00", "CNY", "银行2", "账户已销户"),
                     (third.end_to_end_id, "成功", "0.05", "CNY", "银行3", "")],
                    encoding="gb18030")
    result = apply(client, auth, run_worker, batch, data)
    assert (result.status, result.paid_count, result.rejected_count) == ("done", 2, 1)
    db.session.refresh(second)
    assert second.reason == "账户已销户" and first.bank_ref == "银行1"
    assert batch.status == BatchStatus.CLOSED  # every line paid or rejected


# --- ISO 20022 ----------------------------------------------------------------------------


CAMT = """<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.08">
 <BkToCstmrDbtCdtNtfctn>
  <GrpHdr><MsgId>BANK-MSG-1</MsgId><CreDtTm>2026-12-07T10:00:00</CreDtTm></GrpHdr>
  <Ntfctn><Id>N1</Id>{entries}</Ntfctn>
 </BkToCstmrDbtCdtNtfctn>
</Document>"""
ENTRY = """<Ntry><Amt Ccy="CNY">{amount}</Amt><CdtDbtInd>DBIT</CdtDbtInd>
<Sts><Cd>{status}</Cd></Sts><AcctSvcrRef>{ref}</AcctSvcrRef>
<NtryDtls><TxDtls><Refs><MsgId>{batch}</MsgId><EndToEndId>{e2e}</EndToEndId></Refs>
<Amt Ccy="CNY">{amount}</Amt>{ret}</TxDtls></NtryDtls></Ntry>"""

PAIN002 = """<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.10">
 <CstmrPmtStsRpt>
  <GrpHdr><MsgId>STS-1</MsgId><CreDtTm>2026-12-07T10:00:00</CreDtTm></GrpHdr>
  <OrgnlGrpInfAndSts><OrgnlMsgId>{batch}</OrgnlMsgId><OrgnlMsgNmId>pain.001.001.09</OrgnlMsgNmId>
  </OrgnlGrpInfAndSts>
  <OrgnlPmtInfAndSts><OrgnlPmtInfId>{batch}-P</OrgnlPmtInfId>{txs}</OrgnlPmtInfAndSts>
 </CstmrPmtStsRpt>
</Document>"""
TX = """<TxInfAndSts><StsId>S{n}</StsId><OrgnlEndToEndId>{e2e}</OrgnlEndToEndId>
<TxSts>{status}</TxSts>{reason}<OrgnlTxRef><Amt><InstdAmt Ccy="CNY">{amount}</InstdAmt></Amt>
</OrgnlTxRef></TxInfAndSts>"""


def test_camt054_books_and_returns(app, users, client, auth, run_worker, scene) -> None:
    batch = scene["batch"]
    first, second, third = lines(batch)
    entries = "".join([
        ENTRY.format(amount="100.10", status="BOOK", ref="AS-1", batch="PB-0001",
                     e2e=first.end_to_end_id, ret=""),
        ENTRY.format(amount="250.00", status="BOOK", ref="AS-2", batch="PB-0001",
                     e2e=second.end_to_end_id,
                     ret="<RtrInf><Rsn><Cd>AC06</Cd></Rsn></RtrInf>"),
        ENTRY.format(amount="0.05", status="PDNG", ref="AS-3", batch="PB-0001",
                     e2e=third.end_to_end_id, ret=""),
    ])
    result = apply(client, auth, run_worker, batch, CAMT.format(entries=entries).encode(),
                   "camt.xml")
    assert (result.status, result.format) == ("done", "camt.054"), result.error
    assert (result.paid_count, result.rejected_count) == (1, 1)
    assert [p["kind"] for p in result.problems] == ["not_final"]
    db.session.refresh(first)
    db.session.refresh(second)
    assert (first.status, first.bank_ref) == ("paid", "AS-1")
    assert (second.status, second.reason) == ("rejected", "AC06")
    assert scene["cases"][0].status == CaseStatus.PAID


def test_pain002_accepts_and_rejects(app, users, client, auth, run_worker, scene) -> None:
    batch = scene["batch"]
    first, second, third = lines(batch)
    txs = "".join([
        TX.format(n=1, e2e=first.end_to_end_id, status="ACSC", reason="", amount="100.10"),
        TX.format(n=2, e2e=second.end_to_end_id, status="RJCT",
                  reason="<StsRsnInf><Rsn><Cd>AM04</Cd></Rsn></StsRsnInf>", amount="250.00"),
        TX.format(n=3, e2e=third.end_to_end_id, status="ACCP", reason="", amount="0.05"),
    ])
    data = PAIN002.format(batch="PB-0001", txs=txs).encode()
    result = apply(client, auth, run_worker, batch, data, "status.xml")
    assert (result.status, result.format) == ("done", "pain.002"), result.error
    assert (result.paid_count, result.rejected_count) == (2, 1)
    db.session.refresh(second)
    assert (second.status, second.reason) == ("rejected", "AM04")
    assert batch.status == BatchStatus.CLOSED
    # The same report naming another batch's message id is refused whole; a message id
    # naming no batch is judged by its lines (here: all this batch's, already recorded).
    make_batch(users, [approved_case(users, scene["event"], 77, "7.00")], "PB-0077")
    unnamed = apply(client, auth, run_worker, batch,
                    PAIN002.format(batch="MSG-20261207-1", txs=txs).encode(), "status.xml")
    assert unnamed.status == "done" and [p["kind"] for p in unnamed.problems] == ["unchanged"]
    other = PAIN002.format(batch="AFTERCARE/PB-0077", txs=txs).encode()
    refused = apply(client, auth, run_worker, batch, other, "status.xml")
    assert refused.status == "failed" and "PB-0077" in refused.error


# --- programmes ---------------------------------------------------------------------------


def test_a_member_whose_payout_failed_twice_is_unclaimed(app, users, client, auth, run_worker,
                                                         ) -> None:
    event = make_event()
    programme = make_programme(event)
    case = approved_case(users, event, 1, "88.80", programme)
    member = db.session.scalar(select(ProgrammeMember).where(ProgrammeMember.case_id == case.id))
    for attempt, ref in enumerate(("PB-0101", "PB-0102"), start=1):
        batch = make_batch(users, [case], ref, programme)
        line = lines(batch)[0]
        result = apply(client, auth, run_worker, batch, csv_file([
            (line.end_to_end_id, "rejected", "88.80", "CNY", "", "AC01")]))
        assert result.rejected_count == 1
        db.session.refresh(member)
        assert member.failed_payouts == attempt
    assert (member.status, member.unclaimed_reason) == (MemberStatus.UNCLAIMED, "payout_failed")
    recon = reconciliation.for_programme(programme)
    assert recon.members[0].buckets == {"unclaimed": Decimal("88.80")}
    assert recon.payouts.totals[0].rejected == Decimal("177.60")
    assert recon.balanced
    page = client.get(f"/payouts/programmes/{programme.id}/reconciliation")
    assert page.status_code == 200 and "held (unclaimed)" in page.get_data(as_text=True)


def test_a_result_file_pays_the_programme_members_in_bulk_each_audited(
        app, users, client, auth, run_worker) -> None:
    """The bank's result file pays its programme cases' members (``paid_many``: one UPDATE
    and one audit entry per programme and chunk, listing them); a member who is not under
    the programme any more (written off) and a rejected line's member are left as they
    are."""
    from portal.audit.models import AuditEntry

    event = make_event()
    programme = make_programme(event)
    paid = [approved_case(users, event, n, "10.00", programme) for n in (1, 2, 3)]
    rejected = approved_case(users, event, 4, "20.00", programme)
    outside = db.session.scalar(select(ProgrammeMember).where(
        ProgrammeMember.case_id == paid[2].id))
    outside.status = MemberStatus.WRITTEN_OFF
    batch = make_batch(users, [*paid, rejected], "PB-0201", programme)
    rows = [(line.end_to_end_id, "paid", str(line.amount), "CNY", f"BK{line.id}", "")
            for line in lines(batch)]
    rows[3] = (rows[3][0], "rejected", "20.00", "CNY", "", "AC04")
    result = apply(client, auth, run_worker, batch, csv_file(rows))
    assert (result.paid_count, result.rejected_count) == (3, 1)
    statuses = dict(db.session.execute(select(ProgrammeMember.case_id, ProgrammeMember.status)
                                       .where(ProgrammeMember.programme_id == programme.id))
                    .all())
    assert statuses == {paid[0].id: MemberStatus.PAID, paid[1].id: MemberStatus.PAID,
                        paid[2].id: MemberStatus.WRITTEN_OFF,
                        rejected.id: MemberStatus.CREATED}
    entries = list(db.session.scalars(select(AuditEntry).where(
        AuditEntry.action == "programme.members_paid")))
    members = {m.case_id: m.id for m in db.session.scalars(select(ProgrammeMember))}
    payments = {p.case_id: p.id for p in db.session.scalars(select(Payment))}
    assert len(entries) == 1 and entries[0].subject_id == str(programme.id)
    assert entries[0].actor_id == users[Role.FINANCE].id
    assert entries[0].after["members"] == [[members[c.id], c.id, payments[c.id]]
                                           for c in paid[:2]]
    assert "2 members paid" in entries[0].summary
    assert reconciliation.for_programme(programme).balanced


def test_a_programme_case_is_paid_without_the_events_offer_acceptance(
        app, users, client, auth, run_worker) -> None:
    event = make_event()
    programme = make_programme(event)
    case = approved_case(users, event, 1, "12.34", programme)
    batch = make_batch(users, [case], "PB-0200", programme)
    result = apply(client, auth, run_worker, batch, all_paid_csv(batch))
    assert result.paid_count == 1 and result.problems == []
    assert case.status == CaseStatus.PAID and case.payment.paid_by_id == users[Role.FINANCE].id


# --- reconciliation -----------------------------------------------------------------------


def test_reconciliation_to_the_cent_and_a_difference_shown_in_red(
        app, users, client, auth, run_worker, scene) -> None:
    batch = scene["batch"]
    first, second, _third = lines(batch)
    apply(client, auth, run_worker, batch, csv_file([
        (first.end_to_end_id, "paid", "100.10", "CNY", "BK1", ""),
        (second.end_to_end_id, "rejected", "250.00", "CNY", "BK2", "AC04")]))
    recon = reconciliation.for_batch(batch)
    (totals,) = recon.totals
    assert (totals.expected, totals.paid, totals.rejected, totals.pending) == (
        Decimal("350.15"), Decimal("100.10"), Decimal("250.00"), Decimal("0.05"))
    assert totals.difference == Decimal("0.00") and totals.payments == Decimal("100.10")
    assert recon.balanced
    page = client.get(f"/payouts/batches/{batch.id}/reconciliation").get_data(as_text=True)
    assert "Reconciled to the cent." in page and "350.15" in page
    zh = client.get(f"/payouts/batches/{batch.id}/reconciliation?lang=zh_CN")
    assert "已对平，精确到分。" in zh.get_data(as_text=True)

    # Break it: the case payment behind the paid line is a cent off.
    db.session.execute(update(Payment).where(Payment.case_id == first.case_id)
                       .values(amount=Decimal("100.09")))
    db.session.commit()
    recon = reconciliation.for_batch(batch)
    assert not recon.balanced and recon.totals[0].payments_difference == Decimal("0.01")
    assert [(f.kind, f.end_to_end_id) for f in recon.findings] == [
        ("payment_differs", first.end_to_end_id)]
    page = client.get(f"/payouts/batches/{batch.id}/reconciliation").get_data(as_text=True)
    assert "Does not reconcile" in page and 'class="num error">0.01' in page
    assert "the case payment differs from the line" in page
    assert first.end_to_end_id in page


def test_result_pages_are_finance_and_admin_only(app, users, client, auth, scene) -> None:
    batch = scene["batch"]
    auth.login(Role.AGENT)
    assert client.get(f"/payouts/batches/{batch.id}/results").status_code == 403
    assert client.get(f"/payouts/batches/{batch.id}/reconciliation").status_code == 403
    auth.logout()
    auth.login(Role.ADMIN)
    page = client.get(f"/payouts/batches/{batch.id}/results?lang=zh_CN").get_data(as_text=True)
    assert "上传并入账" in page


# --- the event's export archive ---------------------------------------------------------------


def test_the_event_archive_holds_programmes_batches_files_and_results(
        app, users, client, auth, run_worker, tmp_path) -> None:
    import json
    import zipfile

    from portal.lifecycle import archive as fmt
    from portal.lifecycle.export import write_archive
    from portal.payouts.models import PayoutFile

    event = make_event()
    programme = make_programme(event)
    programme.terms_en, programme.amounts_sha256 = "We pay you back.", "ab" * 32
    cases = [approved_case(users, event, i, amount, programme)
             for i, amount in enumerate(AMOUNTS)]
    batch = make_batch(users, cases, "PB-0300", programme)
    db.session.execute(update(PayoutLine).values(payout_sealed="SEALED-BANK-DETAILS"))
    db.session.add(PayoutFile(batch_id=batch.id, format="pain.001", row_count=3,
                              control_sum=Decimal("350.15"), status="done", sha256="cd" * 32,
                              size=1234, requested_by_id=users[Role.FINANCE].id))
    db.session.commit()
    first = lines(batch)[0]
    result = apply(client, auth, run_worker, batch, csv_file([
        (first.end_to_end_id, "paid", "100.10", "CNY", "BK1", ""),
        ("PB-0300-9999", "paid", "1.00", "CNY", "BK9", "")]))

    path = tmp_path / "archive.zip"
    with path.open("wb") as out:
        write_archive(db.session.get(type(event), event.id), out)
    assert fmt.verify_archive(path) == []
    with zipfile.ZipFile(path) as zf:
        record = json.loads(zf.read("event.json"))
        members_csv = zf.read("programme_members.csv").decode("utf-8-sig")
        lines_csv = zf.read("payout_lines.csv").decode("utf-8-sig")
        audit_lines = [json.loads(line) for line in zf.read("audit.jsonl").splitlines()]
        everything = b"".join(zf.read(n) for n in zf.namelist()).decode("utf-8", "replace")
    (exported,) = record["programmes"]
    assert exported["id"] == programme.id and exported["terms_en"] == "We pay you back."
    assert exported["amounts_sha256"] == "ab" * 32 and "signoff_id" in exported
    assert exported["rules"] == {} and exported["members"] == {  # the paid one's member too
        "created/CNY": {"count": 2, "amount": "250.05"},
        "paid/CNY": {"count": 1, "amount": "100.10"}}
    (exported_batch,) = record["payout_batches"]
    assert (exported_batch["ref"], exported_batch["status"]) == ("PB-0300", "released")
    assert exported_batch["prepared_by_id"] == users[Role.FINANCE].id
    assert exported_batch["released_by_id"] == users[Role.ADMIN].id
    assert exported_batch["control_sum"] == "350.15"
    assert exported_batch["line_counts"] == {"paid": 1, "pending": 2}
    (exported_file,) = exported_batch["files"]
    assert (exported_file["format"], exported_file["sha256"], exported_file["row_count"],
            exported_file["control_sum"]) == ("pain.001", "cd" * 32, 3, "350.15")
    (exported_result,) = exported_batch["results"]
    assert exported_result["sha256"] == result.sha256
    assert (exported_result["paid_count"], exported_result["rejected_count"]) == (1, 0)
    assert [p["kind"] for p in exported_result["problems"]] == ["unknown"]
    assert len(members_csv.strip().splitlines()) == 4 and len(lines_csv.strip().splitlines()) == 4
    assert "SEALED-BANK-DETAILS" not in everything and "payout_sealed" not in lines_csv
    assert {"payout_result.upload", "payout_result.applied"} <= {
        e["action"] for e in audit_lines if e["subject_type"] == "payout_result"}


def test_cases_paid_by_hand_or_changed_meanwhile_are_reported_not_paid_twice(
        app, users, client, auth, run_worker, scene) -> None:
    from portal.cases import services as case_services

    batch = scene["batch"]
    by_hand, changed, _third = scene["cases"]
    case_services.record_payment(by_hand, amount=by_hand.approved_amount,
                                 payout_ref="PAY-HAND-1", actor=users[Role.AGENT])
    db.session.commit()
    recon = reconciliation.for_batch(batch)
    assert [f.kind for f in recon.findings] == ["pending_but_paid"] and not recon.balanced
    # Another change to the second case (it was sent back to work) since the batch was made.
    db.session.execute(update(Case).where(Case.id == changed.id).values(
        status=CaseStatus.IN_PROGRESS, lock_version=Case.lock_version + 1))
    db.session.commit()

    auth.login(Role.FINANCE)
    upload(client, batch, all_paid_csv(batch))
    newest = db.session.scalar(select(func.max(PayoutResult.id)))
    polling = client.get(f"/payouts/results/{newest}",
                         headers={"HX-Request": "true", "HX-Target": "result-status"})
    assert 'hx-trigger="every 1s"' in polling.get_data(as_text=True)
    run_worker()
    db.session.expire_all()
    result = db.session.scalars(select(PayoutResult).order_by(PayoutResult.id.desc())).first()
    assert (result.status, result.paid_count) == ("done", 3), result.error
    kinds = {p["kind"]: p for p in result.problems}
    assert set(kinds) == {"case_paid_before", "case_not_paid"}
    assert db.session.scalar(select(func.count(Payment.id))) == 2  # the hand one, the third
    assert by_hand.payment.payout_ref == "PAY-HAND-1"
    assert changed.status == CaseStatus.IN_PROGRESS and changed.payment is None
    recon = reconciliation.for_batch(batch)
    assert [f.kind for f in recon.findings] == ["paid_no_payment"]
    assert recon.totals[0].payments_difference == Decimal("250.00")
    page = text(client.get(f"/payouts/results/{result.id}"))
    assert "could not be recorded as paid: Only an approved case can be paid." in page


def test_bulk_payments_fall_back_case_by_case_when_a_case_changed_meanwhile(
        app, users, scene) -> None:
    from portal.cases.bulk_payments import PaymentItem, PaymentSource, record_payments

    first, changed, third = scene["cases"]
    db.session.execute(update(Case).where(Case.id == changed.id)
                       .values(status=CaseStatus.IN_PROGRESS, lock_version=Case.lock_version + 1)
                       .execution_options(synchronize_session=False))
    assert changed.status == CaseStatus.APPROVED  # what this session still believes
    items = [PaymentItem(case, case.approved_amount, f"PAY-BULK-{case.id}")
             for case in scene["cases"]]
    source = PaymentSource("payout_result", 0, scene["batch"].ref)
    refused = record_payments(items, actor=users[Role.FINANCE], source=source)
    db.session.commit()
    assert set(refused) == {changed.id}
    assert {p.case_id for p in db.session.scalars(select(Payment))} == {first.id, third.id}
    db.session.expire_all()
    assert (first.status, changed.status, third.status) == (
        CaseStatus.PAID, CaseStatus.IN_PROGRESS, CaseStatus.PAID)
    with pytest.raises(Exception, match="cannot take this step"):
        record_payments(items, actor=users[Role.LEGAL], source=source)


def test_a_result_whose_job_was_lost_is_queued_again(app, users, run_worker, scene) -> None:
    from datetime import timedelta

    from portal import jobs
    from portal.models import utcnow
    from portal.payouts import results

    batch = scene["batch"]
    row = results.start_result(batch, io.BytesIO(all_paid_csv(batch)), "lost.csv",
                               actor=users[Role.FINANCE])
    row.created_at = utcnow() - timedelta(minutes=5)
    db.session.commit()  # committed, but the job never reached the queue
    assert jobs.reconcile_all() >= 1
    run_worker()
    db.session.expire_all()
    assert db.session.get(PayoutResult, row.id).paid_count == 3
    assert batch.status == BatchStatus.CLOSED


def test_a_programme_case_is_not_paid_by_hand(app, users) -> None:
    """Only a payout batch pays a case under a programme (the opt-in acceptance and the
    payable rules are checked when it goes into a batch)."""
    from portal.cases import services as case_services
    from portal.errors import RuleViolation

    event = make_event()
    case = approved_case(users, event, 1, "12.00", programme=make_programme(event))
    for role in (Role.AGENT, Role.ADMIN, Role.FINANCE):
        with pytest.raises(RuleViolation, match="payout batch"):
            case_services.record_payment(case, amount="12.00", payout_ref="PAY-HAND-1",
                                         actor=users[role])
    assert db.session.get(Case, case.id).status == CaseStatus.APPROVED
    payment = case_services.record_payment(case, amount="12.00", payout_ref="PAY-BATCH-1",
                                           actor=users[Role.FINANCE], through_batch=True)
    assert payment.case_id == case.id
