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
from tests.notice_helpers import ZH, make_notice, pdf_text_and_fonts, publish

pytestmark = pytest.mark.integration



def test_published_notice_pdf_via_worker(app, client, users, run_worker, tmp_path) -> None:
    app.config["PDF_DIR"] = str(tmp_path / "pdf")
    notice = make_notice(users)
    publish(notice, users)
    publishing.after_publication([notice.id])
    row = db.session.scalar(select(NoticePdf))
    row_id = row.id
    assert row.kind == "signed" and row.status == "queued"
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
    response = client.get(f"/notices/{notice.slug}.pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert response.headers["ETag"].strip('"') == row.sha256
    assert client.get(f"/notices/{notice.slug}.pdf",
                      headers={"If-None-Match": response.headers["ETag"]}).status_code == 304
    # Running the job again changes nothing: same row, same file.
    assert documents.render_document_job(pdf.PIPELINE.name, row_id) == row.sha256
    assert len(list((tmp_path / "pdf").glob("*.pdf"))) == 1


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
    row = db.session.scalar(select(NoticePdf))
    assert row.kind == "draft" and row.status == "done"
    done = client.get(status_url, headers={"HX-Request": "true"})
    assert "every 1s" not in done.text and "Download PDF" in done.text
    text, _fonts = pdf_text_and_fonts(tmp_path / "pdf" / f"{row.sha256}.pdf")
    assert "草稿" in text or "DRAFT" in text
    with app.test_request_context():
        again = pdf.render_pdf(row.version, pdf.Stamp(False))
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
    row = notice_services.request_pdf(notice.latest_version, "draft")
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
    row = notice_services.request_pdf(notice.latest_version, "draft")
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
    row = db.session.scalar(select(NoticePdf))
    row.requested_at -= timedelta(minutes=5)
    uow.commit()  # the publication's boundary: its PDF job is queued after the commit
    rq.queue.connection.flushall()  # Redis emptied before a worker took the job
    run_worker()
    assert db.session.get(NoticePdf, row.id).status == "queued"
    assert "Re-queued 1 job(s)." in runner.invoke(args=["reconcile"]).output
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
