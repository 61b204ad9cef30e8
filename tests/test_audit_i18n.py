"""Audit entries, sign-off titles and statuses in the reader's language: an entry keeps its
message key and parameters (hashed only when present, so older entries keep their hash and
their text), codes in it are labelled when read, and no call site writes finished English."""

from __future__ import annotations

import ast
import hashlib
import json
import re
from datetime import UTC
from pathlib import Path

import pytest
from flask import Flask
from flask_babel import force_locale, gettext, ngettext
from sqlalchemy import select, text

from portal.accounts import Role
from portal.audit import services as audit
from portal.audit.chain import compute_hash, entry_mac
from portal.audit.models import AuditEntry
from portal.cases import services as cases
from portal.customers.models import ImportBatch, ImportStatus
from portal.events.models import LABELS as EVENT_LABELS
from portal.extensions import db
from portal.i18n import LOCALE_COOKIE, N_, Message, term, term_kinds
from portal.mailings import unsubscribe as unsubscribing
from portal.models import utcnow
from portal.notices import services as notices
from portal.signoffs.models import SignoffRequest
from tests.case_helpers import make_case
from tests.conftest import PASSWORD
from tests.notice_helpers import approve, make_event, make_notice

PORTAL = Path(__file__).resolve().parent.parent / "portal"


def _read(app: Flask, entry: AuditEntry, locale: str) -> str:
    with app.test_request_context(), force_locale(locale):
        return entry.text


def _tamper(sql: str, **params: object) -> None:
    db.session.commit()
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text(sql), params)
    db.session.expire_all()


def _keyed_entry(users) -> AuditEntry:
    return audit.record("case.in_progress", "case", 5,
                        N_("Case %(ref)s: %(action)s → %(status)s", ref="C-2026-00005",
                           action=term("case_action", "start"),
                           status=term("case", "in_progress")),
                        actor=users[Role.AGENT])


# --- keyed entries --------------------------------------------------------------------------


def test_a_keyed_entry_reads_in_each_language_and_keeps_english_as_summary(app, users) -> None:
    entry = _keyed_entry(users)
    db.session.commit()
    assert entry.message_key == "Case %(ref)s: %(action)s → %(status)s"
    assert entry.message_params["status"] == {"term": "case", "value": "in_progress"}
    assert entry.summary == "Case C-2026-00005: Start working → In progress"
    assert _read(app, entry, "en") == entry.summary
    chinese = _read(app, entry, "zh_CN")
    with app.test_request_context(), force_locale("zh_CN"):
        start, in_progress = gettext("Start working"), gettext("In progress")
    assert chinese == f"工单 C-2026-00005：{start} → {in_progress}"
    assert "Start" not in chinese and "in_progress" not in chinese
    assert audit.verify_chain().ok


def test_nested_messages_lists_and_texts_per_language_are_read_too(app) -> None:
    title = N_("%(ref)s v%(n)d — %(title)s", ref="N-2026-0001", n=2,
               title={"localised": {"zh_CN": "系统故障", "en": "Outage"}})
    message = Message(N_("Sign-off requested for %(subject)s", subject=title).key,
                      subject=title)
    steps = N_("Post-mortem edited: %(steps)s",
               steps=[term("postmortem_step", "goals"), term("postmortem_step", "causes")])
    with app.test_request_context():
        assert message.in_english() == "Sign-off requested for N-2026-0001 v2 — Outage"
        with force_locale("zh_CN"):
            assert str(message) == "已请求法务审批：N-2026-0001 第 2 版 — 系统故障"
            assert str(steps) == "复盘已编辑：回顾目标、分析原因"


def test_a_finished_text_is_refused(app, users) -> None:
    with pytest.raises(TypeError):
        audit.record("case.note", "case", 1, "Internal note on C-1", actor=users[Role.AGENT])
    with pytest.raises(TypeError):
        audit.record_many("customer.erase", "customer", [(1, "erased", None)])


def test_changing_the_stored_parameters_or_key_breaks_the_chain(app, users) -> None:
    entry = _keyed_entry(users)
    entry_id = entry.id
    audit.record("case.note", "case", 5, N_("Internal note on %(ref)s", ref="C-2026-00005"),
                 actor=users[Role.AGENT])
    db.session.commit()
    assert audit.verify_chain().ok
    forged = json.dumps({"ref": "C-2026-00005", "action": {"term": "case_action", "value":
                         "start"}, "status": {"term": "case", "value": "rejected"}})
    _tamper("UPDATE audit_entry SET message_params = :p WHERE id = :id", p=forged, id=entry_id)
    result = audit.verify_chain()
    assert not result.ok and result.broken_entry_id == entry_id
    assert result.finding["code"] == "hash_mismatch"


def test_changing_the_stored_key_breaks_the_chain(app, users) -> None:
    entry_id = _keyed_entry(users).id
    db.session.commit()
    _tamper("UPDATE audit_entry SET message_key = :k WHERE id = :id",
            k="Case %(ref)s closed", id=entry_id)
    result = audit.verify_chain()
    assert not result.ok and result.broken_entry_id == entry_id


# --- entries written before keys ------------------------------------------------------------


def _old_algorithm_hash(entry: AuditEntry) -> str:
    """The chain hash as it was computed before message keys existed."""
    payload = {
        "created_at": entry.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "actor_id": entry.actor_id, "actor_label": entry.actor_label, "action": entry.action,
        "subject_type": entry.subject_type, "subject_id": entry.subject_id,
        "summary": entry.summary, "before": entry.before, "after": entry.after,
        "ip": entry.ip, "prev_hash": entry.prev_hash,
    }
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False,
                           separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def test_an_entry_without_a_key_verifies_as_before_and_shows_its_stored_text(
        app, users, client) -> None:
    old = AuditEntry(created_at=utcnow(), actor_id=None, actor_label="system",
                     action="case.in_progress", subject_type="user",
                     subject_id=str(users[Role.AGENT].id),
                     summary="Case C-2026-00005: start → in_progress", before=None,
                     after={"status": "in_progress"}, ip=None,
                     prev_hash=db.session.scalar(select(AuditEntry.hash)
                                                 .order_by(AuditEntry.id.desc()).limit(1)))
    old.hash = _old_algorithm_hash(old)
    old.mac = entry_mac(old.hash)
    db.session.add(old)
    db.session.flush()
    _keyed_entry(users)  # a keyed entry chained after it
    db.session.commit()
    assert compute_hash(old) == old.hash  # the hash covers exactly what it covered before
    assert audit.verify_chain().ok
    assert _read(app, old, "zh_CN") == "Case C-2026-00005: start → in_progress"
    client.set_cookie(LOCALE_COOKIE, "zh_CN")
    client.post("/login", data={"email": users[Role.ADMIN].email, "password": PASSWORD})
    page = client.get(f"/audit/history/user/{users[Role.AGENT].id}").text
    assert "Case C-2026-00005: start → in_progress" in page
    assert ">系统<" in page and ">system<" not in page


# --- every writer passes a key --------------------------------------------------------------


def _function_of(tree: ast.AST) -> dict[ast.AST, ast.FunctionDef]:
    owner = {}
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef):
            for node in ast.walk(fn):
                owner.setdefault(node, fn)
    return owner


def _is_message(expr: ast.expr, fn: ast.FunctionDef | None) -> bool:
    """``N_("literal", …)``, a choice between such, or a name that only ever holds one (a
    parameter annotated ``Message``, or assigned such expressions in the function)."""
    if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name) and expr.func.id == "N_":
        return (bool(expr.args) and isinstance(expr.args[0], ast.Constant)
                and isinstance(expr.args[0].value, str))
    if isinstance(expr, ast.IfExp):
        return _is_message(expr.body, fn) and _is_message(expr.orelse, fn)
    if isinstance(expr, ast.Name) and fn is not None:
        params = fn.args.args + fn.args.kwonlyargs
        if any(p.arg == expr.id and p.annotation is not None
               and ast.unparse(p.annotation) == "Message" for p in params):
            return True
        values = [node.value for node in ast.walk(fn) if isinstance(node, ast.Assign)
                  and any(isinstance(t, ast.Name) and t.id == expr.id for t in node.targets)]
        return bool(values) and all(_is_message(v, fn) for v in values)
    return False


def _audit_calls() -> list[tuple[str, int, ast.expr | None, ast.FunctionDef | None]]:
    found = []
    for path in sorted(PORTAL.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        owner = _function_of(tree)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "audit"
                    and node.func.attr in ("record", "record_many")):
                continue
            where = f"{path.relative_to(PORTAL.parent)}:{node.lineno}"
            keywords = {k.arg: k.value for k in node.keywords}
            if node.func.attr == "record":
                message = node.args[3] if len(node.args) > 3 else keywords.get("message")
            else:
                items = node.args[2] if len(node.args) > 2 else keywords.get("items")
                element = getattr(items, "elt", None)
                message = element.elts[1] if isinstance(element, ast.Tuple) else None
            found.append((where, node.lineno, message, owner.get(node)))
    return found


def test_every_audit_call_in_the_portal_passes_a_message_key() -> None:
    calls = _audit_calls()
    assert len(calls) >= 60, "the scan no longer finds the portal's audit calls"
    plain = [where for where, _line, message, fn in calls
             if message is None or not _is_message(message, fn)]
    assert plain == [], ("audit.record(...) must say what happened as N_(\"msgid\", **params)"
                         " (see README, 'Audit entries in the reader's language')")


def test_the_scan_catches_a_finished_text() -> None:
    tree = ast.parse('def f(case):\n    x = f"Case {case.ref} edited"\n'
                     '    audit.record("case.edit", "case", 1, x)\n'
                     '    audit.record("case.edit", "case", 1, N_(f"Case {case.ref}"))\n')
    fn = tree.body[0]
    messages = [node.args[3] for node in ast.walk(tree) if isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)]
    assert [_is_message(m, fn) for m in messages] == [False, False]


def test_every_term_kind_used_in_the_portal_is_registered(app) -> None:
    used = set()
    for path in PORTAL.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id == "term" and node.args
                    and isinstance(node.args[0], ast.Constant)):
                used.add(node.args[0].value)
    assert {"case", "case_action", "role", "signoff_status"} <= used
    assert used - term_kinds() == set()


# --- pages in Chinese -----------------------------------------------------------------------


ENGLISH = ("Case C-", "Sign-off requested", "Sign-off decided", "start → in_progress",
           "Start working", "In progress", "refund", "Refund", "opened:", " signed", "queued",
           "Queued", ">system<", "on approval", "public ·", "Notice N-", "drafted",
           "unsubscribed", "Customer #", "Approved")


def _text(page: str) -> str:
    """The page's text without its tags (a typed value inside a sentence is a span)."""
    return re.sub(r"<[^>]*>", "", page)


def _english_in(page: str) -> list[str]:
    """The listed English fragments in the page's text (not in its tags' attributes)."""
    return [fragment for fragment in ENGLISH if fragment in _text(page)]


@pytest.fixture
def chinese_pages(app, users, client):
    """A case proposed above the threshold (a sign-off), a reply, an unsubscription by the
    customer (a system entry), and a notice approved by legal with a queued PDF."""
    case = make_case(users, amount="6000.00")
    cases.change_status(case, "start", actor=users[Role.AGENT])
    cases.propose(case, actor=users[Role.AGENT])
    cases.add_reply(case, "您好，我们正在处理。", actor=users[Role.AGENT])
    unsubscribing.unsubscribe(case.customer, via="one-click")
    notice = make_notice(users)
    approve(notice, users)
    notices.request_pdfs(notice.latest_version, "signed")
    db.session.commit()
    client.set_cookie(LOCALE_COOKIE, "zh_CN")
    client.post("/login", data={"email": users[Role.LEGAL].email, "password": PASSWORD})
    return {"case": case, "notice": notice}


def test_sign_off_pages_in_chinese_hold_no_english(app, users, client, chinese_pages) -> None:
    case = chinese_pages["case"]
    queue = client.get("/signoffs/").text
    assert f"{case.ref} — 退款 6000.00 CNY" in _text(queue)
    assert _english_in(queue) == []
    detail = client.get(f"/signoffs/{case.signoff_id}").text
    assert _english_in(detail) == [] and "已请求法务审批" in detail
    request = db.session.scalar(select(SignoffRequest).where(
        SignoffRequest.subject_type == "notice_version"))
    page = client.get(f"/signoffs/{request.id}").text
    assert "发布对象：公开" in page and "法务批准后由人工发布" in page
    assert "CRM 系统故障通知" in page
    assert _english_in(page) == []


def test_case_customer_and_notice_pages_in_chinese_hold_no_english(
        app, users, client, chinese_pages) -> None:
    case, notice = chinese_pages["case"], chinese_pages["notice"]
    case_page = client.get(f"/cases/{case.id}").text
    assert "工单 " + case.ref in _text(case_page) and "排队中" in case_page
    assert _english_in(case_page) == []
    customer_page = client.get(f"/customers/{case.customer_id}").text
    assert ">系统<" in customer_page and "一键退订" in customer_page
    assert _english_in(customer_page) == []
    notice_page = client.get(f"/staff/notices/{notice.id}").text
    assert "第 1 版 · 带法务签章" in notice_page and "等待中" in notice_page
    assert _english_in(notice_page) == []


# --- phases and plurals ---------------------------------------------------------------------


def test_incident_phases_read_as_phases_in_chinese(app) -> None:
    with app.test_request_context(), force_locale("zh_CN"):
        assert str(EVENT_LABELS["responding"]) == "响应中"
        assert str(EVENT_LABELS["handling"]) == "处置中"


def test_counts_take_the_plural_form_in_english(app) -> None:
    with app.test_request_context(), force_locale("en"):
        one = ngettext("%(num)d customer added, %(updated)d updated.",
                       "%(num)d customers added, %(updated)d updated.", 1, updated=0)
        two = ngettext("%(num)d customer added, %(updated)d updated.",
                       "%(num)d customers added, %(updated)d updated.", 2, updated=0)
    assert (one, two) == ("1 customer added, 0 updated.", "2 customers added, 0 updated.")


def test_the_import_page_says_one_customer_added(app, users, client) -> None:
    batch = ImportBatch(event_id=make_event().id, filename="one.csv", sha256="0" * 64, size=9,
                        status=ImportStatus.IMPORTED, created_count=1, updated_count=2,
                        uploaded_by_id=users[Role.AGENT].id)
    db.session.add(batch)
    db.session.commit()
    client.post("/login", data={"email": users[Role.AGENT].email, "password": PASSWORD})
    page = client.get(f"/customers/imports/{batch.id}?lang=en").text
    assert "1 customer added, 2 updated." in page and "1 customers" not in page
