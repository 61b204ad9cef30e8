"""Clearer mailing actions: sending a version again is confirmed with the count, the status
text agrees with the progress, and the preview can be shown as any customer of the audience."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select, update

from portal.accounts import Role
from portal.extensions import db
from portal.mailings import repeats
from portal.mailings import services as mailings
from portal.mailings.models import Mailing, MailingRecipient, MailingStatus, RecipientStatus
from tests.test_mailings import add_customers, draft

SENT_AT = datetime(2026, 3, 4, 9, 30, tzinfo=UTC)


def _sent(mailing: Mailing, customer_ids: list[int] | None = None) -> None:
    """As if the worker had delivered these recipients (all of them by default)."""
    stmt = update(MailingRecipient).where(MailingRecipient.mailing_id == mailing.id)
    if customer_ids is not None:
        stmt = stmt.where(MailingRecipient.customer_id.in_(customer_ids))
    db.session.execute(stmt.values(status=RecipientStatus.SENT, sent_at=SENT_AT))
    db.session.commit()


def _first_mailing_reached(users, event, notice, people) -> None:
    first = draft(users, event, notice, audience={"tags": ["early"]})
    mailings.start(first, actor=users[Role.AGENT])
    _sent(first)


def test_sending_a_version_again_needs_the_confirmation_with_the_count(
        app, users, scenario, client, auth) -> None:
    event, notice = scenario
    early = add_customers(users, event, 3, tags="early", prefix="E")
    add_customers(users, event, 2, prefix="L")
    _first_mailing_reached(users, event, notice, early)
    again = draft(users, event, notice)
    db.session.commit()
    auth.login(Role.AGENT)
    page = client.get(f"/mailings/{again.id}").text
    assert "already sent to 3 of these 5 recipients" in page
    assert f'name="{repeats.CONFIRM_FIELD}"' in page

    refused = client.post(f"/mailings/{again.id}/start")
    assert refused.status_code == 422
    assert "already sent to 3 of these 5 recipients" in refused.text
    assert 'id="repeat-error"' in refused.text
    db.session.rollback()
    assert db.session.get(Mailing, again.id).status == MailingStatus.DRAFT
    assert db.session.scalar(select(func.count(MailingRecipient.id)).where(
        MailingRecipient.mailing_id == again.id)) == 0

    started = client.post(f"/mailings/{again.id}/start", data={repeats.CONFIRM_FIELD: "y"})
    assert started.status_code == 302
    db.session.rollback()
    assert db.session.get(Mailing, again.id).status == MailingStatus.SENDING
    assert db.session.scalar(select(func.count(MailingRecipient.id)).where(
        MailingRecipient.mailing_id == again.id)) == 5


def test_the_count_covers_recipients_reached_or_still_waiting(app, users, scenario) -> None:
    """Sent and still waiting count (a mailing under way reaches them); failed, skipped and
    cancelled rows do not; the date is the latest."""
    event, notice = scenario
    people = add_customers(users, event, 5)
    first = draft(users, event, notice)
    mailings.start(first, actor=users[Role.AGENT])
    _sent(first, [people[0].id])
    for person, status in zip(people[2:], (RecipientStatus.FAILED, RecipientStatus.SKIPPED,
                                           RecipientStatus.CANCELLED), strict=True):
        db.session.execute(update(MailingRecipient).where(
            MailingRecipient.mailing_id == first.id,
            MailingRecipient.customer_id == person.id).values(status=status))
    # people[1] is still waiting in the first mailing
    again = draft(users, event, notice)
    repeat = repeats.repeat_of(again, mandatory=False)
    # the waiting one's date is its mailing's start, later than the other's delivery
    assert (repeat.already, repeat.to_send) == (2, 5)
    assert repeat.last_sent_at == db.session.get(Mailing, first.id).started_at > SENT_AT
    with pytest.raises(mailings.RuleViolation) as err:
        mailings.start(again, actor=users[Role.AGENT])
    assert err.value.field == repeats.CONFIRM_FIELD
    assert "already sent to 2 of these 5 recipients" in err.value.message
    db.session.rollback()


def test_a_first_mailing_of_a_version_needs_no_confirmation(app, users, scenario,
                                                           client, auth) -> None:
    event, notice = scenario
    add_customers(users, event, 2)
    mailing = draft(users, event, notice)
    db.session.commit()
    auth.login(Role.AGENT)
    assert repeats.CONFIRM_FIELD not in client.get(f"/mailings/{mailing.id}").text
    assert client.post(f"/mailings/{mailing.id}/start").status_code == 302


def test_the_repeat_message_in_chinese(app, users, scenario, client, auth) -> None:
    event, notice = scenario
    early = add_customers(users, event, 2, tags="early", prefix="E")
    _first_mailing_reached(users, event, notice, early)
    again = draft(users, event, notice)
    db.session.commit()
    auth.login(Role.AGENT)
    client.post("/language", data={"locale": "zh_CN"})
    page = client.post(f"/mailings/{again.id}/start").text
    assert "此版本已于" in page and "发送给这 2 位收件人中的 2 位" in page


# ------------------------------------------------------------------ status and its progress

@pytest.mark.parametrize(("status", "recipients", "label", "percent"), [
    (MailingStatus.DRAFT, {}, "Draft", 0),
    (MailingStatus.SENDING, {RecipientStatus.SENT: 1, RecipientStatus.PENDING: 3}, "Sending", 25),
    (MailingStatus.SENDING, {RecipientStatus.SENT: 4}, "Closing", 99),
    (MailingStatus.PAUSED, {RecipientStatus.SENT: 2, RecipientStatus.PENDING: 2}, "Paused", 50),
    (MailingStatus.DONE, {RecipientStatus.SENT: 3, RecipientStatus.FAILED: 1}, "Finished", 100),
    (MailingStatus.CANCELLED, {RecipientStatus.SENT: 1, RecipientStatus.CANCELLED: 3},
     "Cancelled", 25),
])
def test_the_status_text_agrees_with_the_progress(app, users, scenario, client, auth, status,
                                                  recipients, label, percent) -> None:
    event, notice = scenario
    people = add_customers(users, event, 4)
    mailing = draft(users, event, notice)
    statuses = [s for s, n in recipients.items() for _ in range(n)]
    for person, recipient_status in zip(people, statuses, strict=False):
        db.session.add(MailingRecipient(mailing_id=mailing.id, customer_id=person.id,
                                        email=person.email, locale=person.locale,
                                        status=recipient_status))
    mailing.status, mailing.total = status, len(statuses)
    db.session.commit()
    auth.login(Role.AGENT)
    shown = mailings.progress(mailing)
    assert label in shown.label and shown.percent == percent
    assert "Being sent" not in shown.label
    pages = [client.get(f"/mailings/event/{event.id}").text,
             client.get(f"/mailings/{mailing.id}").text]
    if status != MailingStatus.DRAFT:
        pages.append(client.get(f"/mailings/{mailing.id}/progress").text)
        assert f'data-percent="{percent}"' in pages[-1]
        assert ("every 1s" in pages[-1]) == (status == MailingStatus.SENDING)
    for page in pages:
        assert label in page and "Being sent" not in page
        if percent == 100:
            assert "Finished" in page


# ---------------------------------------------------------------------- preview as anyone

def test_the_preview_finds_a_customer_beyond_the_first_ten(app, users, scenario, client,
                                                           auth) -> None:
    event, notice = scenario
    people = add_customers(users, event, 14)
    outsider = add_customers(users, event, 1, tags="other", prefix="X")[0]
    mailing = draft(users, event, notice)
    db.session.commit()
    last = people[-1]
    auth.login(Role.AGENT)
    page = client.get(f"/mailings/{mailing.id}").text
    assert last.name not in page  # the sample holds the first ten only
    hx = {"HX-Request": "true", "HX-Target": "preview-matches"}
    for query in (last.name, last.email.upper(), last.external_ref):
        found = client.get(f"/mailings/{mailing.id}/preview/customers",
                           query_string={"q": query}, headers=hx).text
        assert f'customer={last.id}"' in found, query
    preview = client.get(f"/mailings/{mailing.id}/preview?customer={last.id}",
                         headers={"HX-Request": "true", "HX-Target": "preview"}).text
    assert last.name in preview
    # Results are limited, and only the audience's customers are found.
    many = client.get(f"/mailings/{mailing.id}/preview/customers", query_string={"q": "k"},
                      headers=hx).text
    assert many.count("<li") == 10 and "More match" in many
    tagged = draft(users, event, notice, audience={"tags": ["other"]})
    db.session.commit()
    none = client.get(f"/mailings/{tagged.id}/preview/customers",
                      query_string={"q": last.name}, headers=hx).text
    assert f'customer={last.id}"' not in none and "No customer" in none
    assert f'customer={outsider.id}"' in client.get(
        f"/mailings/{tagged.id}/preview/customers", query_string={"q": "X"}, headers=hx).text
