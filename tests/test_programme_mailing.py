"""A programme's mailing through the real mailing machinery (a real SMTP server, a real RQ
worker): each member's amount in their language and their personal link in the greeting,
under the text legal approved; notified members; no address or a bounce make a member
unclaimed; the re-contact mailing once the address is corrected."""

from __future__ import annotations

import re
from collections import Counter
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from portal.accounts import Role
from portal.audit.models import AuditEntry
from portal.customers import services as customers
from portal.errors import RuleViolation
from portal.extensions import db
from portal.mail.devsmtp import read_messages
from portal.mailings import services as mailings
from portal.mailings.audience import Audience, summarise
from portal.mailings.models import Mailing, MailingRecipient, MailingStatus, RecipientStatus
from portal.programmes import mailing as programme_mailing
from portal.programmes.models import MemberStatus, ProgrammeMember, ProgrammeStatus
from tests.mail_helpers import recipients_received
from tests.notice_helpers import make_notice
from tests.programme_mail_helpers import (
    add_member,
    customer_of,
    make_programme,
    start_programme_mailing,
)

pytestmark = pytest.mark.integration


def _member(member_id: int) -> ProgrammeMember:
    return db.session.get(ProgrammeMember, member_id, populate_existing=True)


def _text(message) -> str:
    return message.get_body(("plain",)).get_content()


def test_members_get_their_amount_and_link_in_their_language(
        app, users, scenario, smtp, run_worker, client) -> None:
    event, notice = scenario
    bounced_address = "gone@example.com"
    handler = smtp(refuse={bounced_address})
    programme = make_programme(event)
    zh = add_member(users, programme, "Z1", "1280.50")
    en = add_member(users, programme, "E1", "99.99", locale="en", name="Anna Schmidt")
    silent = add_member(users, programme, "N1", "10.00", email="")
    bounced = add_member(users, programme, "B1", "20.00", email=bounced_address)
    other = add_member(users, make_programme(event), "X1", "5.00")  # another programme
    db.session.commit()

    mailing = start_programme_mailing(users, programme, notice)
    run_worker()

    assert db.session.get(Mailing, mailing.id).status == MailingStatus.DONE
    assert recipients_received(handler.directory) == Counter(
        {customer_of(zh).email: 1, customer_of(en).email: 1})
    by_to = {m["X-Envelope-To"]: m for m in read_messages(handler.directory)}
    zh_text = _text(by_to[customer_of(zh).email])
    en_text = _text(by_to[customer_of(en).email])
    assert "尊敬的王芳" in zh_text and "¥1,280.50" in zh_text and "请于" in zh_text
    assert "Dear Anna Schmidt" in en_text and "CN¥99.99" in en_text
    # The approved notice text follows the greeting unchanged.
    assert by_to[customer_of(zh).email]["Subject"] == notice.latest_version.in_locale(
        "zh_CN")[1]["title"]
    # The personal link in the greeting opens the member's page with the offer.
    link = re.search(r"https?://\S+/my/\S+", en_text).group(0)
    page = client.get(urlsplit(link).path, follow_redirects=True)
    assert page.status_code == 200
    assert "CN¥99.99" in page.text and "By accepting you settle" in page.text

    assert _member(zh.id).notified_at is not None and _member(en.id).notified_at is not None
    assert _member(other.id).notified_at is None  # not in this programme's audience
    no_address, refused = _member(silent.id), _member(bounced.id)
    assert (no_address.status, no_address.unclaimed_reason) == (MemberStatus.UNCLAIMED,
                                                                "no_address")
    assert (refused.status, refused.unclaimed_reason) == (MemberStatus.UNCLAIMED, "bounced")
    assert refused.notified_at is None
    entries = db.session.scalars(select(AuditEntry).where(
        AuditEntry.action == "programme.unclaimed")).all()
    assert {entry.subject_id for entry in entries} == {str(programme.id)}
    assert sorted(m for entry in entries for m in entry.after["member_ids"]) == sorted(
        [silent.id, bounced.id])


def test_recontact_reaches_the_unclaimed_once_their_address_is_corrected(
        app, users, scenario, smtp, run_worker) -> None:
    event, notice = scenario
    handler = smtp(refuse={"old@example.com"})
    programme = make_programme(event, mode="proactive")
    reached = add_member(users, programme, "R1", "30.00")
    silent = add_member(users, programme, "N1", "10.00", email="")
    bounced = add_member(users, programme, "B1", "20.00", email="old@example.com")
    still_silent = add_member(users, programme, "N2", "15.00", email="")
    db.session.commit()
    start_programme_mailing(users, programme, notice)
    run_worker()
    assert {_member(m.id).status for m in (silent, bounced, still_silent)} == {
        MemberStatus.UNCLAIMED}

    for member, address in ((silent, "new1@example.com"), (bounced, "new2@example.com")):
        customer = customer_of(member)
        customers.update_customer(customer, {
            "external_ref": customer.external_ref, "name": customer.name,
            "email": address, "locale": customer.locale}, actor=users[Role.AGENT])
    db.session.commit()
    recontact = start_programme_mailing(users, programme, notice, programme_mailing.RECONTACT)
    run_worker()

    rows = db.session.scalars(select(MailingRecipient).where(
        MailingRecipient.mailing_id == recontact.id)).all()
    assert sorted(r.customer_id for r in rows) == sorted(
        [silent.customer_id, bounced.customer_id])
    assert {r.status for r in rows} == {RecipientStatus.SENT}
    assert recipients_received(handler.directory)["new1@example.com"] == 1
    for member in (silent, bounced):
        back = _member(member.id)
        assert back.status == MemberStatus.CREATED and back.unclaimed_reason is None
        assert back.notified_at is not None
    assert _member(still_silent.id).status == MemberStatus.UNCLAIMED
    assert _member(reached.id).status == MemberStatus.CREATED
    assert db.session.scalar(select(AuditEntry.id).where(
        AuditEntry.action == "programme.member_recontacted")) is not None


def test_only_a_running_programme_is_mailed_and_only_approved_text(
        app, users, scenario) -> None:
    event, notice = scenario
    programme = make_programme(event)
    add_member(users, programme, "Z1", "10.00")
    programme.status = ProgrammeStatus.APPROVED
    db.session.commit()
    data = mailings.MailingInput(version_id=notice.latest_version.id, audience=Audience(),
                                 attach_pdf=False, greeting_zh="", greeting_en="")
    with pytest.raises(RuleViolation, match="not created yet"):
        programme_mailing.draft_mailing(programme, programme_mailing.LAUNCH, data,
                                        actor=users[Role.AGENT])
    programme.status = ProgrammeStatus.RUNNING
    unapproved = make_notice(users, event)
    data.version_id = unapproved.latest_version.id
    with pytest.raises(RuleViolation, match="not approved"):
        programme_mailing.draft_mailing(programme, programme_mailing.LAUNCH, data,
                                        actor=users[Role.AGENT])
    assert db.session.scalar(select(Mailing.id)) is None


def test_staff_draft_a_programme_mailing_in_both_languages(
        app, users, scenario, client, auth) -> None:
    event, notice = scenario
    programme = make_programme(event)
    add_member(users, programme, "Z1", "10.00")
    add_member(users, programme, "E1", "12.00", locale="en")
    db.session.commit()
    auth.login(Role.AGENT)
    for lang, words in (("en", "Mail the members"), ("zh_CN", "致函方案成员")):
        page = client.get(f"/programmes/{programme.id}/mail?lang={lang}")
        assert page.status_code == 200 and words in page.text
    form = client.get(f"/programmes/{programme.id}/mail/new/launch?lang=en")
    assert form.status_code == 200 and "{{ amount }}" in form.text
    bad = client.post(f"/programmes/{programme.id}/mail/new/launch?lang=zh_CN", data={
        "version_id": notice.latest_version.id, "greeting_zh": "{{ secret }}",
        "greeting_en": ""})
    assert bad.status_code == 422 and "greeting_zh-error" in bad.text
    done = client.post(f"/programmes/{programme.id}/mail/new/launch", data={
        "version_id": notice.latest_version.id,
        "greeting_zh": programme_mailing.DEFAULT_GREETINGS["zh_CN"],
        "greeting_en": programme_mailing.DEFAULT_GREETINGS["en"]})
    assert done.status_code == 302
    mailing = db.session.scalar(select(Mailing))
    assert mailing.audience["kind"] == "programme"
    assert summarise(event.id, Audience.from_dict(mailing.audience), False).to_send == 2
    detail = client.get(f"/mailings/{mailing.id}?lang=en")
    assert "members of programme Outage compensation" in detail.text
    # Saving the draft through the mailing's own form keeps the programme's audience.
    client.post(f"/mailings/{mailing.id}/edit", data={
        "version_id": notice.latest_version.id, "greeting_zh": "您好 {{ name }} {{ amount }}",
        "greeting_en": "Hello {{ name }} {{ amount }}"})
    db.session.expire_all()
    assert db.session.get(Mailing, mailing.id).audience["kind"] == "programme"
    preview = client.get(f"/mailings/{mailing.id}/preview")
    assert "您好 王芳 ¥10.00" in preview.text
