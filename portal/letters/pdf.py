"""Rendering a letter run in the shared document pipeline (``portal.documents``).

Letters are rendered ``services.CHUNK`` at a time: each letter's HTML in its customer's
language (the approved text in that language, or the other one under a note), one WeasyPrint
document per chunk (each letter starts a page), and the chunks joined with pypdf into the
print-ready PDF; with a ZIP, each letter's pages (found by its anchor) are also written as a
PDF of their own. Chunks keep memory flat in the number of letters and let the run show its
progress (committed after each chunk: the only change in the session until the end). Each
letter carries a new personal link to the customer's page (printed and as a QR code) and its
own verification code; the links and letter rows are written at the end, in the unit of
work that marks the run done, so a failed or repeated render leaves none behind twice."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path
from typing import Any

from flask import current_app, render_template
from flask_babel import force_locale
from sqlalchemy import delete, insert

from portal import documents, jobs, metrics, uow, verification
from portal.customers import links
from portal.customers.models import CUSTOMER_LOCALES
from portal.errors import RuleViolation
from portal.extensions import db
from portal.letters import services
from portal.letters.models import Letter, LetterRun
from portal.markdown import render_markdown
from portal.placeholders import format_amount

TIMEOUT_SECONDS = 600


def _shown(texts: dict[str, Any], locale: str) -> str:
    return locale if locale in texts else next(iter(texts))


def letter_html(run: LetterRun, source: services.Source, person: services.Recipient,
                link: str, code: str, index: int) -> tuple[str, str]:
    """One letter's HTML in its customer's language, and that language."""
    locale = person.customer.locale if person.customer.locale in CUSTOMER_LOCALES else "zh_CN"
    shown = _shown(source.texts, locale)
    text = source.texts[shown]
    body_html = text.get("body_html") or render_markdown(text.get("terms", ""))
    amount = format_amount(person.amount, person.currency) if person.amount is not None else ""
    with force_locale(locale):
        html = render_template(
            "letters/_letter.html", run=run, index=index, locale=locale, shown=shown,
            person=person, customer=person.customer, title=text["title"], body_html=body_html,
            amount=amount, link=link, link_qr=_qr_svg(link),
            code=verification.grouped(code), verify_url=verification.verify_url(code),
            company=current_app.config["PORTAL_COMPANY_NAME"])
    return html, locale


def _qr_svg(url: str) -> str:
    """As ``verification.qr_svg``, with a fixed mask pattern: segno otherwise scores all eight
    for each code (about 6 ms a letter); any mask is a valid QR code, and the tests and
    phones read it."""
    import segno

    qr = segno.make_qr(url, error="m", mask=1)
    return qr.svg_inline(scale=3, border=4, dark="#000", light="#fff", omitsize=False)


def _document(parts: list[str]) -> Any:
    from weasyprint import CSS, HTML

    fetcher = documents.refusing_fetcher()
    html = render_template("letters/pdf.html", letters=parts)
    return HTML(string=html, url_fetcher=fetcher, base_url=None).render(
        stylesheets=[CSS(string=documents.STYLESHEET.read_text(), url_fetcher=fetcher)])


def _identity(run: LetterRun, part: str) -> bytes:
    return hashlib.sha256(f"letters:{run.id}:{run.content_hash}:{part}".encode()).digest()[:16]


def _render(run: LetterRun) -> bytes | None:
    """The run's PDF (and ZIP); None when legal's approval no longer covers it."""
    from pypdf import PdfWriter

    try:
        source = services.source_of(run)
    except RuleViolation as err:
        jobs.record_failure(LetterRun, run.id, f"Not rendered: {err}")
        return None
    run_id, lifetime = run.id, links.link_lifetime_days()
    link_rows: list[dict[str, Any]] = []
    letter_rows: list[dict[str, Any]] = []
    writer = PdfWriter()
    # The ZIP grows on disk, not in memory (about 300 KB a letter: each carries its fonts).
    archive = documents.storage_dir() / f"letters-{run_id}.zip.tmp"
    zipped = zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) if run.with_zip else None
    try:
        done = 0
        for chunk in services.recipients(run):
            parts, names = [], []
            for person in chunk:
                done += 1
                row, token = links.personal_row(person.customer.id, sent_with=f"letter:{run_id}",
                                                lifetime_days=lifetime)
                code = services.letter_code(run, person.customer.id)
                html, locale = letter_html(run, source, person, links.link_url(token), code, done)
                parts.append(html)
                names.append(f"{done:05d}-{person.customer.external_ref}.pdf")
                link_rows.append(row)
                letter_rows.append({"run_id": run_id, "customer_id": person.customer.id,
                                    "locale": locale, "verification_code": code})
            with metrics.pdf_render():
                document = _document(parts)
                data = document.write_pdf(pdf_identifier=_identity(run, str(done)))
                writer.append(io.BytesIO(data))
                if zipped is not None:
                    _add_letters(zipped, data, _starts(document), names)
            del document, data  # one chunk's layout in memory at a time
            run.progress = done
            uow.commit()  # the progress bar: nothing but the count is in the session yet
    except BaseException:
        if zipped is not None:
            zipped.close()
        archive.unlink(missing_ok=True)  # a failed render leaves no half ZIP behind
        raise
    if not done:
        if zipped is not None:
            zipped.close()
            archive.unlink(missing_ok=True)
        jobs.record_failure(LetterRun, run_id, "Not rendered: nobody to letter.")
        return None
    out = io.BytesIO()
    writer.write(out)
    if zipped is not None:
        zipped.close()
        run.zip_sha256, run.zip_size = _store_file(archive, ".zip")
    db.session.execute(delete(Letter).where(Letter.run_id == run_id))  # a render again
    db.session.execute(insert(links.CustomerLink), link_rows)
    db.session.execute(insert(Letter), letter_rows)
    data = out.getvalue()
    run.sha256 = hashlib.sha256(data).hexdigest()
    services.record_finished(run, done)
    return data


def _store_file(path: Path, suffix: str) -> tuple[str, int]:
    """Store a finished file content-addressed, as ``documents.store`` does with bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    size = path.stat().st_size
    path.replace(documents.stored_path(digest.hexdigest(), suffix))
    return digest.hexdigest(), size


def _starts(document: Any) -> list[int]:
    """The index of each letter's first page (it holds the letter's anchor), and the end."""
    starts = [i for i, page in enumerate(document.pages)
              if any(a.startswith("letter-") for a in page.anchors)]
    return [*starts, len(document.pages)]


def _add_letters(zipped: zipfile.ZipFile, data: bytes, starts: list[int],
                 names: list[str]) -> None:
    """Each letter's pages as a PDF of its own, cut from the chunk's PDF by pypdf (cheaper
    than having WeasyPrint write each again)."""
    from pypdf import PdfReader, PdfWriter

    reader = PdfReader(io.BytesIO(data))
    for n, name in enumerate(names):
        one = PdfWriter()
        for index in range(starts[n], starts[n + 1]):
            one.add_page(reader.pages[index])
        out = io.BytesIO()
        one.write(out)
        zipped.writestr(name, out.getvalue())


PIPELINE = documents.Pipeline(
    "letters", LetterRun, render=_render, views="letters",
    download_name=lambda run: f"letters-{run.id}.pdf", timeout=TIMEOUT_SECONDS)
