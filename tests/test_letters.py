"""Personalised letters (portal/letters): one print-ready PDF per run with a letter per
customer in their language — name, case, amount, payout status, a QR code to their personal
page and the letter's own verification code — carrying exactly what legal approved."""

from __future__ import annotations

import io
import subprocess
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import func, select

from portal.accounts import Role
from portal.audit import services as audit
from portal.cases import services as cases
from portal.customers.links import CustomerLink
from portal.errors import RuleViolation
from portal.extensions import db
from portal.letters import services as letters
from portal.letters.models import Letter, LetterRun
from portal.lifecycle import erasure
from portal.models import PdfStatus
from portal.notices import services as notices
from tests.notice_helpers import approve, make_notice, pdf_text_and_fonts
from tests.test_mailings import add_customers
from tests.test_programme_generation import generate, make_programme

SHOTS = Path("/tmp/letters")


def _pdf(app, run: LetterRun, suffix: str = ".pdf") -> Path:
    sha = run.sha256 if suffix == ".pdf" else run.zip_sha256
    return Path(app.config["PDF_DIR"]) / f"{sha}{suffix}"


def _start(users, notice, *, with_zip: bool = False, role: Role = Role.AGENT) -> LetterRun:
    version = notice.latest_version
    run = letters.start(notice.event, f"notice:{version.id}", with_zip=with_zip,
                        actor=users[role])
    db.session.commit()
    return run


def _render(run: LetterRun, run_worker) -> LetterRun:
    from portal.letters import pdf

    assert pdf.PIPELINE.queue(run.id)
    run_worker()
    return db.session.get(LetterRun, run.id)


@pytest.fixture
def lettered(app, users, tmp_path):
    """An event with an approved notice and three customers (two Chinese, one English), each
    with a case."""
    app.config["PDF_DIR"] = str(tmp_path / "pdf")
    notice = make_notice(users)
    people = add_customers(users, notice.event, 3)  # K0000 en, K0001 zh, K0002 zh
    for n, person in enumerate(people):
        cases.open_case(person, cases.CaseInput("compensation", f"O-{n}", f"{100 + n}.50",
                                                "CNY", "service_outage", "", None),
                        actor=users[Role.AGENT])
    approve(notice, users)
    db.session.commit()
    return notice, people


def _qr_texts(pdf: Path, page: int, name: str) -> list[str]:
    zxingcpp = pytest.importorskip("zxingcpp")
    from PIL import Image

    SHOTS.mkdir(parents=True, exist_ok=True)
    stem = SHOTS / name
    subprocess.run(["pdftoppm", "-r", "150", "-png", "-singlefile", "-f", str(page), "-l",
                    str(page), str(pdf), str(stem)], check=True)
    return [b.text for b in zxingcpp.read_barcodes(Image.open(stem.with_suffix(".png")))]


def test_each_letter_carries_the_customer_their_case_and_code_in_their_language(
        app, users, lettered, run_worker) -> None:
    notice, people = lettered
    run = _render(_start(users, notice, with_zip=True), run_worker)
    assert run.status == PdfStatus.DONE, run.error
    assert run.total == run.progress == 3
    text, fonts = pdf_text_and_fonts(_pdf(app, run))
    assert "NotoSansCJK" in fonts or "Noto-Sans-CJK-SC" in fonts
    pages = text.split("\f")
    rows = {row.customer_id: row for row in db.session.scalars(select(Letter))}
    assert len(rows) == 3
    for page_no, person in enumerate(people, start=1):
        page = pages[page_no - 1]
        case = person.cases[0]
        code = rows[person.id].verification_code
        assert person.name in page and case.ref in page
        assert f"CNY {case.amount:,.2f}" in page
        assert f"{code[:5]}-{code[5:]}" in page
        if person.locale == "en":
            assert "Dear" in page and "Payout status" in page and "CRM outage" in page
            assert rows[person.id].locale == "en"
        else:
            assert "尊敬的" in page and "赔付状态" in page and "CRM 系统故障通知" in page
        # The QR code opens the customer's own page, through a link issued for this letter.
        [url] = _qr_texts(_pdf(app, run), page_no, f"letter-{person.locale}-{page_no}")
        assert url.startswith("http://127.0.0.1:5000/my/") and url in page.replace("\n", "")
        token = url.rsplit("/", 1)[1]
        from portal.customers.links import token_hash

        link = db.session.scalar(select(CustomerLink).where(
            CustomerLink.token_hash == token_hash(token)))
        assert link.customer_id == person.id and link.sent_with == f"letter:{run.id}"
    # The ZIP: one PDF per customer, each with its own letter only.
    with zipfile.ZipFile(_pdf(app, run, ".zip")) as archive:
        names = sorted(archive.namelist())
        assert names == ["00001-K0000.pdf", "00002-K0001.pdf", "00003-K0002.pdf"]
        one = SHOTS / "one.pdf"
        one.write_bytes(archive.read(names[1]))
    text, _fonts = pdf_text_and_fonts(one)
    assert people[1].name in text and people[0].name not in text


def test_only_what_legal_approved_can_be_lettered(app, users, lettered, run_worker) -> None:
    notice, _people = lettered
    draft = make_notice(users, event=notice.event)  # never approved
    with pytest.raises(RuleViolation, match="not approved exactly"):
        letters.start(notice.event, f"notice:{draft.latest_version.id}", with_zip=False,
                      actor=users[Role.AGENT])
    assert letters.choices(notice.event) == [
        (f"notice:{notice.latest_version.id}", f"{notice.ref} · v1 · CRM outage")]
    # Approved, then its grant no longer matches (a change after approval): refused, and a run
    # started before the change renders nothing but says why.
    run = _start(users, notice)
    grant = letters.source_of(run).grant
    grant.snapshot = {**grant.snapshot, "locales": {"zh_CN": {"title": "改过", "body_html": ""}}}
    db.session.commit()
    with pytest.raises(RuleViolation):
        letters.start(notice.event, f"notice:{notice.latest_version.id}", with_zip=False,
                      actor=users[Role.AGENT])
    run = _render(run, run_worker)
    assert run.status == PdfStatus.FAILED and "Not rendered" in run.error
    assert db.session.scalar(select(func.count(Letter.id))) == 0
    assert db.session.scalar(select(func.count(CustomerLink.id))) == 0


def test_an_edited_notice_is_not_lettered_in_either_version(app, users, lettered,
                                                            run_worker) -> None:
    notice, _people = lettered
    approved = notice.latest_version
    run = _start(users, notice)  # started under the grant
    notices.save(notice, content={"zh_CN": {"title": "新标题", "body": "x"}}, audience="public",
                 planned_publish_at=None, based_on=approved.number, actor=users[Role.AGENT])
    db.session.commit()
    for version in (notice.latest_version, approved):  # the edit voided the grant
        with pytest.raises(RuleViolation):
            letters.start(notice.event, f"notice:{version.id}", with_zip=False,
                          actor=users[Role.AGENT])
    assert letters.choices(notice.event) == []
    run = _render(run, run_worker)
    assert run.status == PdfStatus.FAILED and "Not rendered" in run.error


def test_a_run_rendered_again_letters_nobody_twice(app, users, lettered, run_worker) -> None:
    notice, _people = lettered
    run = _render(_start(users, notice), run_worker)
    codes = set(db.session.scalars(select(Letter.verification_code)))
    first = run.sha256
    Path(_pdf(app, run)).unlink()  # the file lost: the job renders the run again
    run = _render(run, run_worker)
    assert run.status == PdfStatus.DONE and _pdf(app, run).exists()
    assert set(db.session.scalars(select(Letter.verification_code))) == codes
    assert db.session.scalar(select(func.count(Letter.id))) == 3
    run = _render(run, run_worker)  # done and its file there: left alone
    assert db.session.scalar(select(func.count(Letter.id))) == 3
    assert first


def test_erased_customers_get_no_letter(app, users, lettered, run_worker) -> None:
    notice, people = lettered
    erasure.erase_customers([people[1].id], reason="request", actor=users[Role.ADMIN])
    db.session.commit()
    run = _render(_start(users, notice), run_worker)
    assert run.total == 2
    lettered_ids = set(db.session.scalars(select(Letter.customer_id)))
    assert lettered_ids == {people[0].id, people[2].id}


def test_a_programme_letters_its_members_with_their_amount(app, users, run_worker,
                                                          tmp_path) -> None:
    app.config["PDF_DIR"] = str(tmp_path / "pdf")
    programme = make_programme()
    generate(programme, users, run_worker)
    run = letters.start(programme.event, f"programme:{programme.id}", with_zip=False,
                        actor=users[Role.ADMIN])
    db.session.commit()
    run = _render(run, run_worker)
    assert run.status == PdfStatus.DONE, run.error
    text, _fonts = pdf_text_and_fonts(_pdf(app, run))
    assert "退款方案" in text and "条款" in text and "CNY 10.00" in text
    assert run.total == db.session.scalar(select(func.count(Letter.id))) > 0
    # Terms changed after legal's sign-off: not lettered.
    programme.terms_zh = "改过的条款"
    db.session.commit()
    with pytest.raises(RuleViolation, match="does not cover"):
        letters.start(programme.event, f"programme:{programme.id}", with_zip=False,
                      actor=users[Role.ADMIN])


def test_a_failed_run_shows_why(app, client, auth, users, lettered, run_worker) -> None:
    notice, _people = lettered
    run = _start(users, notice)
    notice_version = notice.latest_version
    grant = letters.source_of(run).grant
    grant.snapshot_hash = "0" * 64
    db.session.commit()
    run = _render(run, run_worker)
    auth.login(Role.AGENT)
    page = client.get(f"/letters/runs/{run.id}")
    assert "The letters could not be made" in page.text and "Not rendered" in page.text
    assert notice_version


def test_staff_start_follow_and_download_and_each_step_is_audited(
        app, client, auth, users, lettered, run_worker) -> None:
    notice, people = lettered
    auth.login(Role.LEGAL)
    event_id = notice.event.id
    page = client.get(f"/letters/events/{event_id}")
    assert page.status_code == 200 and "Print the letters" not in page.text
    assert client.post(f"/letters/events/{event_id}/start",
                       data={"source": f"notice:{notice.latest_version.id}"}).status_code == 403
    auth.logout()
    auth.login(Role.FINANCE)
    assert client.post(f"/letters/events/{event_id}/start",
                       data={"source": f"notice:{notice.latest_version.id}"}).status_code == 403
    auth.logout()
    auth.login(Role.AGENT)
    page = client.get(f"/letters/events/{event_id}")
    assert "Print the letters" in page.text
    refused = client.post(f"/letters/events/{event_id}/start", data={"source": "notice:999"})
    assert refused.status_code == 422 and "Choose what the letters carry" in refused.text
    answer = client.post(f"/letters/events/{event_id}/start",
                         data={"source": f"notice:{notice.latest_version.id}", "with_zip": "y"})
    assert answer.status_code == 302
    run = db.session.scalar(select(LetterRun))
    assert answer.headers["Location"].endswith(f"/letters/runs/{run.id}")
    partial = client.get(f"/letters/runs/{run.id}",
                         headers={"HX-Request": "true", "HX-Target": "letter-run"})
    assert 'hx-trigger="every 1s"' in partial.text and "<html" not in partial.text
    run_worker()
    partial = client.get(f"/letters/runs/{run.id}",
                         headers={"HX-Request": "true", "HX-Target": "letter-run"})
    assert "every 1s" not in partial.text and "Download the letters" in partial.text
    pdf = client.get(f"/letters/runs/{run.id}/file")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF-")
    archive = client.get(f"/letters/runs/{run.id}/zip")
    assert zipfile.ZipFile(io.BytesIO(archive.data)).namelist()
    actions = [e.action for e in audit.history(letters.SUBJECT, run.id)]
    assert actions.count("letters.downloaded") == 2
    assert "letters.started" in actions and "letters.finished" in actions
    for entry in audit.history(letters.SUBJECT, run.id):
        for person in people:  # no personal data in the summaries
            assert person.name not in entry.summary and person.email not in entry.summary
    auth.logout()
    auth.login(Role.LEGAL)  # legal reads the run, but does not take the letters
    assert client.get(f"/letters/runs/{run.id}").status_code == 200
    assert client.get(f"/letters/runs/{run.id}/file").status_code == 403


def test_verify_says_a_letter_was_sent_and_nothing_personal(
        app, client, users, lettered, run_worker) -> None:
    notice, people = lettered
    run = _render(_start(users, notice), run_worker)
    code = db.session.scalar(select(Letter.verification_code).where(
        Letter.customer_id == people[0].id))
    page = client.get(f"/verify/{code[:5]}-{code[5:]}?lang=en")
    assert page.status_code == 200
    assert "belongs to a letter we sent on" in page.text and "CRM outage" in page.text
    for person in people:
        assert person.name not in page.text
    assert people[0].cases[0].ref not in page.text
    zh = client.get(f"/verify/{code}?lang=zh_CN")
    assert "信函" in zh.text
    # A code of a run not finished is nobody's.
    other = letters.letter_code(run, 999999)
    assert client.get(f"/verify/{other}").status_code == 404


def test_the_demo_has_a_finished_letter_run(app, runner) -> None:
    assert runner.invoke(args=["demo", "seed"]).exit_code == 0
    run = db.session.scalar(select(LetterRun))
    assert run is not None and run.status == PdfStatus.DONE, run and run.error
    assert run.zip_sha256 and run.total == db.session.scalar(select(func.count(Letter.id))) > 0
