"""What legal approves is exactly what customers get: a mail's text part says nothing the signed
snapshot does not, and Markdown the renderer would drop or choke on is refused when saved."""

from __future__ import annotations

import dataclasses
import re
from html.parser import HTMLParser

import pytest
from sqlalchemy import update

from portal.accounts import Role
from portal.errors import RuleViolation
from portal.extensions import db
from portal.mailings import audience, compose
from portal.mailings import services as mailings
from portal.markdown import MAX_NESTING, MAX_TABLE_CELLS, check_renderable
from portal.notices import services as notices
from portal.notices.models import NoticeVersion
from portal.postmortems import services as postmortems
from portal.signoffs import services as signoffs
from tests.notice_helpers import make_event, make_notice

DEEP = "> " * 20 + "call 400-666-0000"
IMAGE = "![call 400-777-0000](x.png)"
# Tricky Markdown: what the renderer drops (deep nesting, images, an unused definition standing
# in for a footnote), and what it changes (raw HTML, reference links, entities, tables).
CORPUS = {
    "deep nesting": f"Intro.\n\n{DEEP}",
    "deep list": "".join("   " * i + "- level\n" for i in range(25)) + "   " * 25 + "- 400-111",
    "image": f"Before.\n\n{IMAGE}\n\nAfter.",
    "raw html": 'Say <b>hi</b> <img src="x" alt="call 400-222"> <!-- hidden 400-333 -->',
    "reference links": "See [our page][site] and [the terms].\n\n[site]: https://example.com/a "
                       "\"Site 400-444\"\n[the terms]: https://example.com/terms\n"
                       "[unused]: https://example.com/secret-400-555",
    "entities": "Fish &amp; chips &copy; &#x4e2d;&#25991; &lt;tag&gt; &bogus;",
    "footnotes": "A claim.[^1]\n\n[^1]: The footnote says call 400-888.",
    "table": "| 名称 | 电话 |\n|---|:-:|\n| 客服 | 400-999 |\n| **VIP** | `400-123` |",
    "ordered": "3. three\n4. four\n\n   ```\n   code 400-321\n   ```",
}
WORD = re.compile(r"[^\W_]+")


class _Visible(HTMLParser):
    """What a reader of the signed snapshot's HTML sees: its text, link addresses and titles,
    and the numbers a browser puts before ordered list items."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.items = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.parts.extend(value for _name, value in attrs if value)
        if tag == "li":
            self.items += 1
            self.parts.append(str(self.items))

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def visible_words(snapshot_html: str) -> set[str]:
    reader = _Visible()
    reader.feed(snapshot_html)
    return set(WORD.findall(" ".join(reader.parts).casefold()))


def words(text: str) -> list[str]:
    return WORD.findall(text.casefold())


def approved_with_body(users, body: str):
    """A notice approved by legal whose stored body is ``body`` (written behind the save check,
    as a version saved before that check existed would be)."""
    notice = make_notice(users)
    version = notice.latest_version
    db.session.execute(update(NoticeVersion).where(NoticeVersion.id == version.id)
                       .values(body_zh=body, body_en=body))
    db.session.commit()
    db.session.expire_all()
    request = notices.request_signoff(notice, actor=users[Role.AGENT])
    signoffs.decide(request.id, "approved", "", actor=users[Role.LEGAL])
    return notice, signoffs.granted(notices.SUBJECT, notice.latest_version.id)


@pytest.mark.parametrize("name", list(CORPUS))
def test_every_word_of_the_text_part_is_in_the_snapshot_legal_approved(app, users,
                                                                        name) -> None:
    notice, grant = approved_with_body(users, CORPUS[name])
    mailing = mailings.create_mailing(notice.event, mailings.MailingInput(
        version_id=notice.latest_version.id, audience=audience.Audience.from_dict({}),
        attach_pdf=False, greeting_zh=compose.DEFAULT_GREETINGS["zh_CN"],
        greeting_en=compose.DEFAULT_GREETINGS["en"]), actor=users[Role.AGENT])
    parts = compose.MessageParts.for_mailing(mailing)
    person = compose.Personal("王芳", "")
    for locale in ("zh_CN", "en"):
        message = compose.compose_message(parts, to="w@example.com", name="王芳", locale=locale,
                                          person=person, customer_id=1, msg_id="<t@x>")
        text_part = next(p for p in message.walk() if p.get_content_type() == "text/plain")
        delivered = text_part.get_payload(decode=True).decode()
        # Everything around the body (greeting, title, links, footer) is the same for any body.
        frame = compose.render_for(dataclasses.replace(parts, body_text={"zh_CN": "", "en": ""}),
                                   locale, person, 1).text
        body_words = set(words(delivered)) - set(words(frame))
        approved = visible_words(grant.snapshot["locales"][locale]["body_html"])
        assert body_words <= approved, f"{name}: not approved: {body_words - approved}"
        assert parts.body_text[locale] in delivered
    if name in ("deep nesting", "image"):
        assert "400" not in delivered and "666" not in delivered and "777" not in delivered


def test_the_text_part_keeps_structure_links_and_tables(app, users) -> None:
    from portal.markdown import render_plain_text

    text = render_plain_text("Call **400-800-1234** or see [the page](https://example.com/x)."
                             "\n\n- one\n- two\n\n> quoted\n\n| a | b |\n|---|---|\n| 1 | 2 |")
    assert text == ("Call 400-800-1234 or see the page <https://example.com/x>.\n\n"
                    "- one\n- two\n\n> quoted\n\na | b\n1 | 2")


@pytest.mark.parametrize("body", [DEEP, IMAGE, CORPUS["deep list"], "[^1]: https://example.com/n",
                                  "[x]: https://example.com/only-a-definition"])
def test_saving_refuses_content_the_renderer_would_drop(app, users, body) -> None:
    with pytest.raises(RuleViolation) as refused:
        make_notice(users, content={"en": {"title": "T", "body": f"Hello.\n\n{body}"}})
    assert refused.value.field == "body_en"


@pytest.mark.parametrize("body", [CORPUS["raw html"], CORPUS["entities"], CORPUS["table"],
                                  CORPUS["ordered"], CORPUS["footnotes"],
                                  "See [our page][site].\n\n[site]: https://example.com/a \"Site\"",
                                  "中文**加粗**中文，`code`，<https://example.com>，a_b_c"])
def test_saving_accepts_markdown_that_is_shown_whole(app, users, body) -> None:
    notice = make_notice(users, content={"en": {"title": "T", "body": body}})
    assert notice.latest_version.body_en == body


def test_the_refusal_is_shown_next_to_the_field_in_the_readers_language(client, auth,
                                                                        users) -> None:
    notice = make_notice(users)
    auth.login(Role.AGENT)
    unused = "Hello.\n\n[note]: https://example.com/call-400-555"
    for locale, expected in (("en", "would not be shown to readers"), ("zh_CN", "读者看不到")):
        client.post("/language", data={"locale": locale, "next": "/"})
        response = client.post(f"/staff/notices/{notice.id}/edit", data={
            "audience": "public", "title_en": "T", "body_en": unused, "based_on": "1"})
        assert response.status_code == 422
        assert 'id="body_en-error"' in response.text and expected in response.text
        assert "call-400-555" in response.text  # the author keeps what they typed
    db.session.expire_all()
    assert notice.latest_version.number == 1


EMPHASIS_BOMB = "*" * 12_500 + "x" + "*" * 12_500
BIG_TABLE = "| a | b |\n|---|---|\n" + "| 1 | 2 |\n" * 5_000


def test_saving_refuses_markdown_that_would_overwhelm_the_pdf_renderer(app, users) -> None:
    with pytest.raises(RuleViolation) as nested:
        make_notice(users, content={"zh_CN": {"title": "T", "body": EMPHASIS_BOMB}})
    assert nested.value.field == "body_zh_CN" and str(MAX_NESTING) in nested.value.message
    with pytest.raises(RuleViolation) as table:
        make_notice(users, content={"en": {"title": "T", "body": BIG_TABLE[:50_000]}})
    assert table.value.field == "body_en" and str(MAX_TABLE_CELLS) in table.value.message


def test_post_mortem_steps_are_held_to_the_same_limits(app, users) -> None:
    event = make_event()
    postmortem = postmortems.start(event, actor=users[Role.AGENT])
    for text in (EMPHASIS_BOMB[:19_000], BIG_TABLE[:19_000], DEEP):
        with pytest.raises(RuleViolation) as refused:
            postmortems.update(postmortem, {"narrative": text}, expected_version=1,
                               actor=users[Role.AGENT])
        assert refused.value.field == "narrative"
        db.session.rollback()


def test_limits_leave_ordinary_notices_alone(app) -> None:
    nested_list = "".join("  " * i + "- item\n" for i in range(4))
    for text in (nested_list, "> > quoted **twice** with *emphasis*",
                 "| a | b |\n|---|---|\n" + "| 1 | 2 |\n" * 200):
        check_renderable(text, field="body")


def test_the_live_preview_warns_of_what_saving_would_refuse(client, auth, users) -> None:
    auth.login(Role.AGENT)
    client.post("/language", data={"locale": "en", "next": "/"})
    warned = client.post("/staff/notices/preview?locale=en", data={"body_en": IMAGE})
    assert warned.status_code == 200 and 'role="alert"' in warned.text
    assert "Images are not shown" in warned.text
    fine = client.post("/staff/notices/preview?locale=en", data={"body_en": "**Call** 400."})
    assert 'role="alert"' not in fine.text and "<strong>Call</strong>" in fine.text
