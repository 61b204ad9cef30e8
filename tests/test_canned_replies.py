"""Canned replies: the admin writes, edits and retires them (audited), the placeholder check
of greetings refuses a bad one next to its field, and an agent picks one in the reply form."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.accounts import Role
from portal.audit.models import AuditEntry
from portal.cases import canned
from portal.cases.models import CannedReply
from portal.errors import RuleViolation
from portal.extensions import db
from tests.case_helpers import make_case, make_customer

GOOD = {"title": "Refund under way", "body_zh": "{{ name }}，您好：案件 {{ case_ref }} 的 "
        "{{ case_amount }} 正在退款。", "body_en": "Dear {{ name }}, {{ case_amount }} for "
        "{{ case_ref }} is being refunded."}


def _reply(users, **changes) -> CannedReply:
    return canned.create(canned.CannedInput(**{**GOOD, **changes}), actor=users[Role.ADMIN])


def test_admin_creates_edits_and_retires_with_audit(app, users, auth, client) -> None:
    auth.login(Role.ADMIN)
    response = client.post("/admin/canned-replies/new", data=GOOD)
    assert response.status_code == 302
    reply = db.session.scalar(select(CannedReply))
    assert reply.title == "Refund under way"
    assert "Refund under way" in client.get("/admin/canned-replies/").get_data(as_text=True)
    client.post(f"/admin/canned-replies/{reply.id}", data={**GOOD, "title": "Refund sent"})
    client.post(f"/admin/canned-replies/{reply.id}/retire")
    db.session.expire_all()
    assert reply.title == "Refund sent" and reply.retired
    actions = list(db.session.scalars(select(AuditEntry.action).where(
        AuditEntry.subject_type == "canned_reply").order_by(AuditEntry.id)))
    assert actions == ["canned_reply.create", "canned_reply.edit", "canned_reply.retire"]
    page = client.get(f"/admin/canned-replies/{reply.id}").get_data(as_text=True)
    assert "canned_reply.edit" in page or "edited" in page  # the page shows its history
    with pytest.raises(RuleViolation):
        canned.update(reply, canned.CannedInput(**GOOD), actor=users[Role.ADMIN])


@pytest.mark.parametrize("body, words", [
    ("Dear {{ secret }}", "secret"),
    ("Dear {{ name.__class__ }}", "attributes"),
    ("Dear {% if name %}{{ name }}", "line 1"),
])
def test_a_bad_placeholder_is_refused_next_to_its_field(app, users, auth, client, body,
                                                        words) -> None:
    auth.login(Role.ADMIN)
    response = client.post("/admin/canned-replies/new", data={**GOOD, "body_en": body})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert 'id="body_en-error"' in page and words in page
    assert 'id="body_zh-error"' not in page
    assert db.session.scalar(select(CannedReply)) is None


def test_the_refusal_reads_in_chinese(app, users, auth, client) -> None:
    auth.login(Role.ADMIN)
    response = client.post("/admin/canned-replies/new", data={**GOOD, "body_zh": "{{ secret }}"},
                           headers={"Accept-Language": "zh-CN"})
    assert response.status_code == 422
    assert "模板只能使用" in response.get_data(as_text=True)


def test_only_admins_manage_them(app, users, auth, client) -> None:
    auth.login(Role.AGENT)
    assert client.get("/admin/canned-replies/").status_code == 403
    assert client.post("/admin/canned-replies/new", data=GOOD).status_code == 403


def test_the_reply_form_fills_in_the_customers_language(app, users, auth, client) -> None:
    reply = _reply(users)
    retired = _reply(users, title="Old wording")
    canned.retire(retired, actor=users[Role.ADMIN])
    chinese = make_case(users)
    english = make_case(users, customer=make_customer(users, ref="K-2"), order_ref="O-2")
    english.customer.locale = "en"
    auth.login(Role.AGENT)
    page = client.get(f"/cases/{chinese.id}").get_data(as_text=True)
    assert 'name="canned"' in page and "Refund under way" in page
    assert "Old wording" not in page  # retired replies are not offered
    box = client.get(f"/cases/{chinese.id}/reply-text?canned={reply.id}",
                     headers={"HX-Request": "true"}).get_data(as_text=True)
    assert f"王芳，您好：案件 {chinese.ref} 的 CNY 100.00 正在退款。" in box
    assert '<option selected value="reply">' in box
    box = client.get(f"/cases/{english.id}/reply-text?canned={reply.id}").get_data(as_text=True)
    assert f"Dear 王芳, CNY 100.00 for {english.ref} is being refunded." in box
    box = client.get(f"/cases/{english.id}/reply-text?canned={retired.id}").get_data(as_text=True)
    assert "Old wording" not in box and "refunded" not in box
    auth.logout()
    auth.login(Role.LEGAL)
    assert client.get(f"/cases/{english.id}/reply-text?canned={reply.id}").status_code == 403
