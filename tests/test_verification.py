""""Is this really from us?": verification codes on published versions, on each mailing
message and on the PDFs (with a QR code), checked at /verify — genuine, forged, mistyped,
withdrawn, rate-limited, and never showing anything personal."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from sqlalchemy import func, select

from portal import verification
from portal.accounts import Role
from portal.audit.models import AuditEntry
from portal.cases import services as cases
from portal.extensions import db
from portal.mail.devsmtp import read_messages
from portal.mailings import compose, tasks
from portal.mailings import services as mailings
from portal.mailings.models import MailingRecipient, RecipientStatus
from portal.notices import publishing
from portal.notices import services as notices
from portal.notices.models import NoticePdf, Publication
from portal.signoffs import services as signoffs
from tests.notice_helpers import EN, ZH, make_notice, pdf_text_and_fonts
from tests.notice_helpers import publish as publish_notice
from tests.test_mailings import add_customers, draft

SHOTS = Path("/tmp/verify")


def _code(notice) -> str:
    return db.session.scalar(select(Publication.verification_code).where(
        Publication.version_id == notice.published_version_id))


def _other(code: str) -> str:
    """``code`` with its last character changed: a one-character typo, or a forgery."""
    last = verification.ALPHABET[(verification.ALPHABET.index(code[-1]) + 1) % 32]
    return code[:-1] + last


# ------------------------------------------------------------------------------- the codes

def test_codes_are_50_bits_of_a_readable_alphabet_keyed_and_bound_to_the_content(app) -> None:
    code = verification.version_code(7, "a" * 64)
    assert len(code) == 10 and set(code) <= set(verification.ALPHABET)
    assert not set("ILOU") & set(verification.ALPHABET) and len(verification.ALPHABET) == 32
    assert verification.BITS >= 50
    assert verification.version_code(7, "a" * 64) == code  # deterministic
    assert verification.version_code(7, "b" * 64) != code  # bound to the content hash
    assert verification.version_code(8, "a" * 64) != code  # and to what it was issued for
    assert verification.message_code(7, 1, "a" * 64) != verification.message_code(7, 2, "a" * 64)
    app.config["VERIFICATION_KEY"] = "another key"
    assert verification.version_code(7, "a" * 64) != code  # nobody without the key can make one
    # Many codes: spread over the alphabet, no repeats.
    many = {verification.message_code(1, n, "c" * 64) for n in range(5000)}
    assert len(many) == 5000 and set("".join(many)) == set(verification.ALPHABET)


@pytest.mark.parametrize("typed", ["7K3QM-X9P2D", "7k3qm x9p2d", " 7K3QMX9P2D ", "7k3-qmx-9p2d",
                                   "7K3QM—X9P2D", "7k3qm_x9p2d"])
def test_case_spaces_and_dashes_do_not_matter(typed) -> None:
    assert verification.normalise(typed) == "7K3QMX9P2D"
    assert verification.grouped("7K3QMX9P2D") == "7K3QM-X9P2D"


def test_look_alikes_are_read_as_digits_and_non_codes_refused() -> None:
    assert verification.normalise("ABCDE-FGHIO") == "ABCDEFGH10"
    assert verification.normalise("abcde-fghlo") == "ABCDEFGH10"
    for bad in ["", None, "ABCDE", "ABCDE-FGHJKM", "ABCDE-FGHJU", "ABCDE/FGHJ!",
                "中文中文中文中文中文", "<script>"]:
        assert verification.normalise(bad) is None


# ------------------------------------------------------------------------- published versions

def test_a_published_version_carries_its_code_on_its_page_and_verify_shows_it(
        app, client, users) -> None:
    notice = make_notice(users)
    publish_notice(notice, users)
    db.session.commit()
    code = _code(notice)
    assert code == verification.version_code(notice.published_version_id,
                                              notice.published_version.content_hash)
    grouped = verification.grouped(code)
    page = client.get(f"/notices/{notice.slug}?lang=en")
    assert grouped in page.text and f"/verify/{grouped}" in page.text
    for lang, title, body, said in (("en", EN["title"], "400-800-1234", "Genuine: this is from us"),
                                    ("zh_CN", ZH["title"], "400-800-1234", "确实来自我们")):
        answer = client.get(f"/verify/{grouped}?lang={lang}")
        assert answer.status_code == 200, answer.text
        assert said in answer.text and title in answer.text and body in answer.text
        assert notice.ref in answer.text and answer.headers["Cache-Control"] == "no-store"
    # The form accepts it as people type it.
    typed = client.get("/verify", query_string={"code": code.lower()[:4] + " " + code[4:].lower(),
                                                "lang": "en"})
    assert typed.status_code == 200 and "Genuine: this is from us" in typed.text
    # A signed-off, published version keeps its hash: the code is beside the text, not in it.
    grant = signoffs.granted(notices.SUBJECT, notice.published_version_id)
    assert signoffs.check_binding(grant, notices.snapshot(notice, notice.published_version))


def test_forged_and_mistyped_codes_say_plainly_it_is_not_ours_and_where_to_report(
        app, client, users) -> None:
    app.config["VERIFY_REPORT_ADDRESS"] = "fraud@example.com"
    notice = make_notice(users)
    publish_notice(notice, users)
    db.session.commit()
    entries = db.session.scalar(select(func.count(AuditEntry.id)))
    forged = verification.grouped(_other(_code(notice)))
    for lang, said in (("en", "Not from us"), ("zh_CN", "并非来自我们")):
        answer = client.get(f"/verify/{forged}?lang={lang}")
        assert answer.status_code == 404 and said in answer.text
        assert "mailto:fraud@example.com" in answer.text and ZH["title"] not in answer.text
    app.config["VERIFY_REPORT_ADDRESS"] = "https://example.com/report-fraud"
    answer = client.get("/verify", query_string={"code": forged, "lang": "en"})
    assert answer.status_code == 404 and 'href="https://example.com/report-fraud"' in answer.text
    # Not a code at all: said next to the field, in the reader's language.
    for lang, said in (("en", "cannot be one of our codes"), ("zh_CN", "不可能是我们的查验码")):
        answer = client.get("/verify", query_string={"code": "12345", "lang": lang})
        assert answer.status_code == 422 and 'id="verify-code-error"' in answer.text
        assert 'aria-invalid="true"' in answer.text and said in answer.text
    tag = client.get("/verify/%3Cb%3Ex")
    assert tag.status_code == 422 and "<b>x" not in tag.text and "&lt;b&gt;x" in tag.text
    assert db.session.scalar(select(func.count(AuditEntry.id))) == entries  # nothing changed


def test_a_withdrawn_notice_is_genuine_but_withdrawn_and_an_old_version_is_flagged(
        app, client, users) -> None:
    notice = make_notice(users)
    publish_notice(notice, users)
    db.session.commit()
    first = verification.grouped(_code(notice))
    notices.save(notice, content={"zh_CN": {**ZH, "body": "新的说明：请致电 400-800-9999。"},
                                  "en": {**EN, "body": "New: call 400-800-9999."}},
                 audience="public", planned_publish_at=None, based_on=1,
                 actor=users[Role.AGENT])
    publish_notice(notice, users)
    db.session.commit()
    second = verification.grouped(_code(notice))
    assert second != first
    old = client.get(f"/verify/{first}?lang=en")
    assert old.status_code == 200 and "We have updated this notice since" in old.text
    assert "For withdrawals call" in old.text  # the text the code was issued for
    current = client.get(f"/verify/{second}?lang=en")
    assert "updated this notice since" not in current.text and "400-800-9999" in current.text
    publishing.withdraw(notice, reason="Sent in error", hide=True, actor=users[Role.ADMIN])
    db.session.commit()
    for code in (first, second):
        for lang, said in (("en", "Genuine, but withdrawn"), ("zh_CN", "确为我们所发，但已撤回")):
            answer = client.get(f"/verify/{code}?lang={lang}")
            assert answer.status_code == 200 and said in answer.text
            assert "400-800" not in answer.text  # the withdrawn text is not shown as official


# ------------------------------------------------------------------------ mailing messages

@pytest.mark.integration
def test_each_message_carries_its_own_code_and_verify_shows_nothing_personal(
        app, client, users, scenario, smtp, run_worker) -> None:
    event, notice = scenario
    handler = smtp()
    people = add_customers(users, event, 4)
    case = cases.open_case(people[1], cases.CaseInput("compensation", "O-77", "1280.50", "CNY",
                                                      "service_outage", "", None),
                           actor=users[Role.AGENT])
    hash_before = notice.published_version.content_hash
    mailing = draft(users, event, notice)
    mailings.start(mailing, actor=users[Role.AGENT])
    db.session.commit()
    assert tasks.queue_chunks(mailing.id, [0])
    run_worker()
    rows = {r.email: r for r in db.session.scalars(select(MailingRecipient))}
    codes = {r.verification_code for r in rows.values()}
    assert len(codes) == 4 and None not in codes and _code(notice) not in codes
    messages = {m["X-Envelope-To"]: m for m in read_messages(handler.directory)}
    for person in people:
        message, row = messages[person.email], rows[person.email]
        grouped = verification.grouped(row.verification_code)
        text = message.get_body(("plain",)).get_content()
        html = message.get_body(("html",)).get_content()
        assert grouped in text and f"/verify/{grouped}" in text
        assert grouped in html and f'href="http://127.0.0.1:5000/verify/{grouped}"' in html
        said = "查验码" if person.locale == "zh_CN" else "Verification code"
        assert said in text and said in html
        # The approved body arrives exactly; the code sits in the footer, after it.
        locale = person.locale
        parts = compose.MessageParts.for_mailing(mailing)
        assert parts.body_text[locale] in text
        assert text.index(grouped) > text.index(parts.body_text[locale])
    assert notice.published_version.content_hash == hash_before
    # The code of 客户1's message: the notice's official text and the date, nothing of hers.
    row = rows[people[1].email]
    for lang in ("en", "zh_CN"):
        answer = client.get(f"/verify/{verification.grouped(row.verification_code)}?lang={lang}")
        assert answer.status_code == 200
        assert "400-800-1234" in answer.text and (ZH["title"] in answer.text
                                                  or EN["title"] in answer.text)
        for personal in (people[1].name, people[1].email, people[1].external_ref, case.ref,
                         "1,280.50", "/my/", "/unsubscribe/"):
            assert personal not in answer.text, personal
    assert row.sent_at.strftime("%Y") in answer.text


def test_a_message_never_tried_is_not_vouched_for(app, client, users, scenario) -> None:
    event, notice = scenario
    add_customers(users, event, 2)
    mailing = draft(users, event, notice)
    mailings.start(mailing, actor=users[Role.AGENT])
    db.session.commit()
    row = db.session.scalar(select(MailingRecipient))
    assert row.status == RecipientStatus.PENDING and row.attempts == 0
    assert client.get(f"/verify/{row.verification_code}").status_code == 404


def test_previews_and_test_sends_show_the_published_versions_code(app, users, scenario) -> None:
    event, notice = scenario
    mailing = draft(users, event, notice)
    parts = compose.MessageParts.for_mailing(mailing)
    rendered = compose.render_for(parts, "en", compose.Personal("Test", ""), None)
    assert verification.grouped(_code(notice)) in rendered.text
    assert verification.grouped(_code(notice)) in rendered.html


# ----------------------------------------------------------------------------------- PDFs

def _png(pdf: Path, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    stem = SHOTS / name
    subprocess.run(["pdftoppm", "-r", "150", "-png", "-singlefile", str(pdf), str(stem)],
                   check=True)
    return stem.with_suffix(".png")


@pytest.mark.integration
def test_the_pdfs_carry_the_code_and_a_qr_code_to_its_check(app, client, users, run_worker,
                                                            tmp_path) -> None:
    zxingcpp = pytest.importorskip("zxingcpp")
    from PIL import Image

    app.config["PDF_DIR"] = str(tmp_path / "pdf")
    notice = make_notice(users)
    publish_notice(notice, users)
    publishing.after_publication([notice.id])
    run_worker()
    code = verification.grouped(_code(notice))
    url = f"http://127.0.0.1:5000/verify/{code}"
    for row in db.session.scalars(select(NoticePdf)):
        assert row.status == "done", row.error
        path = tmp_path / "pdf" / f"{row.sha256}.pdf"
        text, fonts = pdf_text_and_fonts(path)
        assert code in text and ("查验码" if row.locale == "zh_CN" else "Verification code") in text
        assert "NotoSansCJK" in fonts or "Noto-Sans-CJK-SC" in fonts
        image = _png(path, f"notice-pdf-{row.locale}")
        found = zxingcpp.read_barcodes(Image.open(image))
        assert [b.text for b in found] == [url], row.locale
        assert [b.format for b in found] == [zxingcpp.BarcodeFormat.QRCode]
    # Where the QR code leads: the version's check.
    assert client.get(f"/verify/{code}").status_code == 200


# ------------------------------------------------------------------------------ rate limit

def test_checks_are_rate_limited_per_client_address(app_factory, users) -> None:
    app = app_factory(VERIFY_LIMIT_PER_IP="3 per minute")
    client = app.test_client()
    with app.app_context():
        for n in range(3):
            answer = client.get(f"/verify/7K3QM-X9P2{n}", environ_base={"REMOTE_ADDR": "10.2.0.1"})
            assert answer.status_code == 404
        for lang, said in (("en", "Too many checks"), ("zh_CN", "查验次数过多")):
            limited = client.get(f"/verify?code=7K3QMX9P2D&lang={lang}",
                                 environ_base={"REMOTE_ADDR": "10.2.0.1"})
            assert limited.status_code == 429 and said in limited.text
        # The empty form is not counted; another address has its own allowance.
        assert client.get("/verify", environ_base={"REMOTE_ADDR": "10.2.0.1"}).status_code \
            == 200
        assert client.get("/verify/7K3QM-X9P2D",
                          environ_base={"REMOTE_ADDR": "10.2.0.2"}).status_code == 404


# ------------------------------------------------------------------------------- demo data

def test_the_demo_notice_shows_its_code(app, client) -> None:
    from portal.main.cli import seed_demo
    from portal.notices.models import Notice

    seed_demo()
    notice = db.session.scalar(select(Notice).where(Notice.published_version_id.is_not(None)))
    code = verification.grouped(_code(notice))
    assert code and code in client.get(f"/notices/{notice.slug}?lang=zh_CN").text
    assert client.get(f"/verify/{code}?lang=zh_CN").status_code == 200
    sent = db.session.scalars(select(MailingRecipient.verification_code).where(
        MailingRecipient.status == RecipientStatus.PENDING)).all()
    assert sent and all(sent)  # the demo mailing's messages have theirs


# ------------------------------------------------------------------------------- migration

def test_the_migration_gives_earlier_publications_their_code(app_factory, tmp_path) -> None:
    """Versions published before the upgrade get the code they would have had."""
    from flask_migrate import upgrade
    from sqlalchemy import text

    app = app_factory(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'before.db'}")
    with app.app_context():
        upgrade(revision="h15_b1")
        with db.engine.begin() as conn:
            conn.execute(text("INSERT INTO notice_version (id, notice_id, number, content_hash, "
                              "created_at) VALUES (5, 1, 1, :hash, '2026-01-01')"),
                         {"hash": "ab" * 32})
            conn.execute(text("INSERT INTO notice_publication (id, notice_id, version_id, "
                              "published_at, emergency) VALUES (1, 1, 5, '2026-01-01', 0)"))
        upgrade()
        with db.engine.connect() as conn:
            code = conn.execute(text("SELECT verification_code FROM notice_publication")).scalar()
        assert code == verification.version_code(5, "ab" * 32)
