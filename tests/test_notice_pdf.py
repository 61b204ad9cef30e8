"""PDFs through a real RQ worker: Chinese text with an embedded CJK font, stamp or
watermark, content-addressed and idempotent, served publicly with an ETag."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from portal import documents, uow
from portal.accounts import Role
from portal.extensions import db
from portal.notices import pdf, publishing, tasks
from portal.notices import services as notice_services
from portal.notices.models import NoticePdf
from tests.notice_helpers import EN, ZH, make_notice, pdf_text_and_fonts, publish

pytestmark = pytest.mark.integration



def test_published_notice_pdf_via_worker(app, client, users, run_worker, tmp_path) -> None:
    app.config["PDF_DIR"] = str(tmp_path / "pdf")
    notice = make_notice(users)
    publish(notice, users)
    publishing.after_publication([notice.id])
    rows = {r.locale: r for r in db.session.scalars(select(NoticePdf))}
    assert sorted(rows) == ["en", "zh_CN"]  # one PDF per language of the version
    assert all(r.kind == "signed" and r.status == "queued" for r in rows.values())
    row_id = rows["zh_CN"].id
    assert client.get(f"/notices/{notice.slug}.pdf").status_code == 503  # not ready yet
    run_worker()
    row = db.session.get(NoticePdf, row_id)
    assert row.status == "done", row.error
    path = tmp_path / "pdf" / f"{row.sha256}.pdf"
    text, fonts = pdf_text_and_fonts(path)
    assert ZH["title"] in text
    assert "Noto-Sans-CJK-SC" in fonts or "NotoSansCJK" in fonts
    assert all(line.split()[-5] == "yes" for line in fonts.splitlines()[2:])  # embedded
    assert re.search(r"\b1\s*/\s*1\b", text) and notice.ref in text  # page x / y
    assert "DRAFT" not in text and "草稿" not in text
    assert row.version.notice.published_version_id == row.version_id
    # The public PDF, with an ETag and revalidation.
    response = client.get(f"/notices/{notice.slug}.pdf?lang=zh_CN")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert response.headers["ETag"].strip('"') == row.sha256
    assert client.get(f"/notices/{notice.slug}.pdf?lang=zh_CN",
                      headers={"If-None-Match": response.headers["ETag"]}).status_code == 304
    # Running the job again changes nothing: same row, same file.
    assert documents.render_document_job(pdf.PIPELINE.name, row_id) == row.sha256
    assert len(list((tmp_path / "pdf").glob("*.pdf"))) == 2  # the Chinese and the English


def test_each_language_has_its_own_pdf_with_its_text(app, client, auth, users, run_worker,
                                                     tmp_path) -> None:
    app.config["PDF_DIR"] = str(tmp_path / "pdf")
    notice = make_notice(users)
    publish(notice, users)
    publishing.after_publication([notice.id])
    run_worker()
    rows = {r.locale: r for r in db.session.scalars(select(NoticePdf))}
    assert {r.status for r in rows.values()} == {"done"}
    assert rows["zh_CN"].sha256 != rows["en"].sha256
    zh = pdf_text_and_fonts(tmp_path / "pdf" / f"{rows['zh_CN'].sha256}.pdf")[0]
    en = pdf_text_and_fonts(tmp_path / "pdf" / f"{rows['en'].sha256}.pdf")[0]
    assert ZH["title"] in zh and "出金申请" in zh and EN["title"] not in zh
    assert "内容哈希值" in zh and "法务部" in zh  # its words too: the stamp in Chinese
    assert EN["title"] in en and "For withdrawals" in en and ZH["title"] not in en
    assert "Content hash" in en and "Approved by the legal department" in en
    # The staff notice page shows the status of both.
    auth.login(Role.AGENT)
    page = client.get(f"/staff/notices/{notice.id}", headers={"Accept-Language": "en"}).text
    for row in rows.values():
        assert f"/staff/notices/pdfs/{row.id}" in page
    assert page.count('<span class="badge ok">ready</span>') == 2
    status = client.get(f"/staff/notices/pdfs/{rows['en'].id}").text
    assert "For readers of English." in status
    assert f"/staff/notices/pdfs/{rows['zh_CN'].id}" in status  # the other language's


def test_staff_pdf_request_makes_both_languages(app, client, auth, users, run_worker,
                                                tmp_path) -> None:
    app.config["PDF_DIR"] = str(tmp_path / "pdf")
    notice = make_notice(users)
    auth.login(Role.AGENT)
    response = client.post(f"/staff/notices/versions/{notice.latest_version.id}/pdf")
    rows = {r.locale: r for r in db.session.scalars(select(NoticePdf))}
    assert sorted(rows) == ["en", "zh_CN"] and {r.kind for r in rows.values()} == {"draft"}
    # The agent reads English: the English row's status page is shown.
    assert response.headers["Location"].endswith(f"/staff/notices/pdfs/{rows['en'].id}")
    run_worker()
    assert {db.session.get(NoticePdf, r.id).status for r in rows.values()} == {"done"}


def test_a_language_the_version_lacks_falls_back_with_a_note(app, users, run_worker,
                                                            tmp_path) -> None:
    app.config["PDF_DIR"] = str(tmp_path / "pdf")
    notice = make_notice(users, content={"zh_CN": ZH})
    publish(notice, users)
    publishing.after_publication([notice.id])
    run_worker()
    rows = {r.locale: r for r in db.session.scalars(select(NoticePdf))}
    en = pdf_text_and_fonts(tmp_path / "pdf" / f"{rows['en'].sha256}.pdf")[0]
    zh = pdf_text_and_fonts(tmp_path / "pdf" / f"{rows['zh_CN'].sha256}.pdf")[0]
    assert "This notice has no English text; the Chinese text follows." in en
    assert ZH["title"] in en and "Content hash" in en  # the Chinese text, English words
    assert ZH["title"] in zh and "no English text" not in zh and "没有" not in zh


def _published_grant(users, tmp_path, app):
    """Legal's grant of a notice just published (its PDFs queued, not rendered yet)."""
    from portal.signoffs import services as signoffs

    app.config["PDF_DIR"] = str(tmp_path / "pdf")
    notice = make_notice(users)
    publish(notice, users)
    publishing.after_publication([notice.id])
    return signoffs.granted(notice_services.SUBJECT, notice.published_version_id)


def test_a_snapshot_changed_after_signing_is_not_stamped(app, users, run_worker,
                                                         tmp_path) -> None:
    from sqlalchemy import update

    from portal.signoffs.models import SignoffRequest

    grant = _published_grant(users, tmp_path, app)
    forged = {**grant.snapshot, "locales": {**grant.snapshot["locales"],
                                            "en": {"title": "Forged", "body_html": "<p>x</p>"}}}
    db.session.execute(update(SignoffRequest).where(SignoffRequest.id == grant.id)
                       .values(snapshot=forged))
    run_worker()
    rows = list(db.session.scalars(select(NoticePdf)))
    assert {r.status for r in rows} == {"failed"}
    assert all("no longer matches its signed hash" in r.error for r in rows)


def test_only_the_text_legal_approved_goes_in(app, users, run_worker, tmp_path) -> None:
    """A grant whose (consistently hashed) snapshot holds other text than the version: the
    PDFs are refused, naming the language, rather than stamping text legal never saw."""
    from sqlalchemy import update

    from portal.signoffs import services as signoffs
    from portal.signoffs.models import SignoffRequest

    grant = _published_grant(users, tmp_path, app)
    other = {**grant.snapshot, "locales": {**grant.snapshot["locales"],
                                           "en": {"title": "Other", "body_html": "<p>x</p>"}}}
    db.session.execute(update(SignoffRequest).where(SignoffRequest.id == grant.id).values(
        snapshot=other, snapshot_hash=signoffs.snapshot_hash(other)))
    run_worker()
    rows = {r.locale: r for r in db.session.scalars(select(NoticePdf))}
    assert {r.status for r in rows.values()} == {"failed"}
    assert "the en text differs from what legal approved" in rows["en"].error


def test_draft_pdf_is_watermarked_and_identical_when_rendered_twice(
        app, client, auth, users, run_worker, tmp_path) -> None:
    app.config["PDF_DIR"] = str(tmp_path / "pdf")
    notice = make_notice(users)
    auth.login(Role.AGENT)
    response = client.post(f"/staff/notices/versions/{notice.latest_version.id}/pdf")
    status_url = response.headers["Location"]
    polling = client.get(status_url, headers={"HX-Request": "true"})
    assert 'hx-trigger="every 1s"' in polling.text
    run_worker()
    row = db.session.scalar(select(NoticePdf).where(NoticePdf.locale == "zh_CN"))
    assert row.kind == "draft" and row.status == "done"
    done = client.get(status_url, headers={"HX-Request": "true"})
    assert "every 1s" not in done.text and "Download PDF" in done.text
    text, _fonts = pdf_text_and_fonts(tmp_path / "pdf" / f"{row.sha256}.pdf")
    assert "草稿" in text or "DRAFT" in text
    with app.test_request_context():
        again = pdf.render_pdf(row.version, pdf.Stamp(False), row.locale)
    assert documents.store(again)[0] == row.sha256  # deterministic: same version, same file
    file = client.get(f"/staff/notices/pdfs/{row.id}/file")
    assert file.status_code == 200 and file.data == again


def test_renderer_fetches_nothing() -> None:
    fetcher = documents.refusing_fetcher()
    for url in ("file:///etc/passwd", "https://example.com/x.png", "http://127.0.0.1/",
                "data:image/png;base64,AAAA"):
        with pytest.raises(documents.FetchRefused):
            fetcher.fetch(url)


def test_a_document_asking_for_local_files_gets_nothing(app, tmp_path) -> None:
    """A stylesheet on disk would add a marker to the text if it were read."""
    from weasyprint import HTML

    css = tmp_path / "leak.css"
    css.write_text('p::after { content: "LEAKED-MARKER"; }')
    html = f'<p>safe</p><link rel="stylesheet" href="{css.as_uri()}">'
    out = tmp_path / "out.pdf"
    HTML(string=html, url_fetcher=documents.refusing_fetcher()).write_pdf(out)
    text, _fonts = pdf_text_and_fonts(out)
    assert "safe" in text and "LEAKED-MARKER" not in text
    # The same document with WeasyPrint's default fetcher does read it: the test can fail.
    HTML(string=html).write_pdf(out)
    assert "LEAKED-MARKER" in pdf_text_and_fonts(out)[0]


def test_failed_render_is_recorded_and_can_be_retried(app, users, run_worker, monkeypatch,
                                                      tmp_path) -> None:
    app.config["PDF_DIR"] = str(tmp_path / "pdf")
    notice = make_notice(users)
    row = notice_services.request_pdf(notice.latest_version, "draft", "zh_CN")
    db.session.commit()
    row_id = row.id

    def broken(*args, **kwargs):
        raise RuntimeError("renderer crashed")

    monkeypatch.setattr(pdf, "render_pdf", broken)
    with pytest.raises(RuntimeError):
        documents.render_document_job(pdf.PIPELINE.name, row_id)
    row = db.session.get(NoticePdf, row_id)
    assert row.status == "failed" and "renderer crashed" in row.error
    monkeypatch.undo()
    row = notice_services.request_pdf(notice.latest_version, "draft", "zh_CN")
    db.session.commit()
    assert row.id == row_id and row.status == "queued"
    pdf.PIPELINE.queue(row_id)
    run_worker()
    assert db.session.get(NoticePdf, row_id).status == "done"


def test_pdf_lost_with_redis_is_requeued_by_the_reconciler(app, runner, users, run_worker,
                                                           tmp_path) -> None:
    from datetime import timedelta

    from portal.extensions import rq

    app.config["PDF_DIR"] = str(tmp_path / "pdf")
    notice = make_notice(users)
    publish(notice, users)
    publishing.after_publication([notice.id])
    rows = list(db.session.scalars(select(NoticePdf)))
    for each in rows:
        each.requested_at -= timedelta(minutes=5)
    row = rows[0]
    uow.commit()  # the publication's boundary: its PDF job is queued after the commit
    rq.queue.connection.flushall()  # Redis emptied before a worker took the job
    run_worker()
    assert db.session.get(NoticePdf, row.id).status == "queued"
    assert "Re-queued 2 job(s)." in runner.invoke(args=["reconcile"]).output  # both languages
    run_worker()
    assert db.session.get(NoticePdf, row.id).status == "done"


def test_scheduler_job_publishes_due_notices_through_the_worker(app, users, run_worker,
                                                                tmp_path) -> None:
    from datetime import timedelta

    from portal.models import utcnow
    from portal.notices import publishing
    from tests.notice_helpers import approve

    app.config["PDF_DIR"] = str(tmp_path / "pdf")
    notice = make_notice(users, planned_publish_at=utcnow() + timedelta(hours=1))
    approve(notice, users)
    publishing.publish(notice, actor=users[Role.AGENT])
    notice.scheduled_at = utcnow() - timedelta(seconds=1)  # its time has come
    db.session.commit()
    tasks.publish_due_job.enqueue()
    run_worker()  # publishes, then renders the signed PDF queued by the publication
    db.session.refresh(notice)
    assert notice.status == "published"
    assert db.session.scalar(select(NoticePdf.status)) == "done"


def test_stamp_setting_names_the_department_or_the_approver(app, client, auth, users,
                                                            run_worker, tmp_path) -> None:
    from portal.audit.models import AuditEntry

    app.config["PDF_DIR"] = str(tmp_path / "pdf")
    approver = users[Role.LEGAL].name
    first = make_notice(users)
    publish(first, users)
    publishing.after_publication([first.id])
    run_worker()
    by_locale = {r.locale: r for r in db.session.scalars(select(NoticePdf))}
    for row in by_locale.values():  # the default: the department, in the PDF's language
        text = pdf_text_and_fonts(tmp_path / "pdf" / f"{row.sha256}.pdf")[0]
        assert approver not in text
    assert "法务部" in pdf_text_and_fonts(
        tmp_path / "pdf" / f"{by_locale['zh_CN'].sha256}.pdf")[0]
    # Only an admin may change it; bad input is refused next to the field.
    auth.login(Role.LEGAL)
    assert client.post("/signoffs/settings", data={"stamp": "approver"}).status_code == 403
    auth.logout()
    auth.login(Role.ADMIN)
    form = client.get("/signoffs/settings", headers={"Accept-Language": "en"})
    assert "PDFs rendered afterwards" in form.text
    assert re.search(r'<input checked[^>]*value="department"', form.text)
    bad = client.post("/signoffs/settings", data={"stamp": "nobody"})
    assert bad.status_code == 422 and 'id="stamp-error"' in bad.text
    saved = client.post("/signoffs/settings", data={"stamp": "approver"})
    assert saved.status_code == 302
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "settings.pdf_stamp"))
    assert entry is not None and entry.after == {"stamp": "approver"}
    # PDFs rendered from now on carry the approver's name; the ones made before stay.
    second = make_notice(users)
    publish(second, users)
    publishing.after_publication([second.id])
    run_worker()
    for row in db.session.scalars(select(NoticePdf).where(
            NoticePdf.version_id == second.published_version_id)):
        text = pdf_text_and_fonts(tmp_path / "pdf" / f"{row.sha256}.pdf")[0]
        assert approver in text and "法务部" not in text.replace(approver, "")
    assert db.session.get(NoticePdf, by_locale["en"].id).sha256 == by_locale["en"].sha256
