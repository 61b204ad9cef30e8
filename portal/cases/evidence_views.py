"""Evidence on the staff case page (attach, download, thumbnail), and the part of the customer
page's upload that belongs to cases (:func:`receive_from_customer`, :data:`upload_limit`).

Files go only to staff, never inline except our own re-encoded thumbnails: a download is
``Content-Disposition: attachment`` with the type we found by content, ``nosniff`` and a CSP
that forbids everything (``sandbox``), so even a browser that chose to render it would run
nothing.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, abort, flash, redirect, request, send_file, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.wrappers import Response

from portal.accounts import Role
from portal.cases import evidence, evidence_files
from portal.cases.models import Case, Evidence
from portal.cases.views import _detail as case_page
from portal.customers.models import Customer
from portal.errors import RuleViolation
from portal.extensions import db
from portal.security import STAFF, access
from portal.web import limit_request, roll_back

bp = Blueprint("case_evidence", __name__, url_prefix="/cases")
bp.add_app_template_global(evidence_files.MAX_BYTES // (1024 * 1024), "evidence_max_mb")
# The file, its form fields and the multipart envelope; a bigger body gets the 413 page.
MAX_REQUEST_BYTES = evidence_files.MAX_BYTES + 256 * 1024
upload_limit = limit_request(MAX_REQUEST_BYTES, evidence_files.too_large)
FILE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cache-Control": "private, no-store",
}


def receive_from_customer(case: Case, customer: Customer) -> str | None:
    """Add the request's file (form field ``file``) to the customer's case: None when it was
    kept (a success message is flashed; the caller redirects), else the message to show next
    to the field (the unit of work is rolled back; the caller answers 422). The customer
    page's view checks the customer's session and that the case is theirs first."""
    try:
        evidence.add_from_customer(case, customer, request.files.get(evidence.FIELD))
    except RuleViolation as err:
        roll_back(err)
        return err.message
    flash(_("Your evidence file was added to case %(ref)s.", ref=case.ref), "success")
    return None


@bp.route("/<int:case_id>/evidence", methods=["POST"])
@access(Role.AGENT, Role.ADMIN, when=evidence.may_add)
@upload_limit
def upload(case_id: int) -> ResponseReturnValue:
    case = db.get_or_404(Case, case_id)
    try:
        evidence.add_from_staff(case, request.files.get(evidence.FIELD),
                                      actor=current_user)
    except RuleViolation as err:
        roll_back(err)
        return case_page(db.get_or_404(Case, case_id), 422, evidence_error=err.message)
    flash(_("Evidence file added to case %(ref)s.", ref=case.ref), "success")
    return redirect(url_for("cases.detail", case_id=case_id) + "#evidence")


def _row(case_id: int, evidence_id: int) -> Evidence:
    row = db.session.get(Evidence, evidence_id)
    if row is None or row.case_id != case_id:
        abort(404)
    return row


def _send(path: Path | None, mimetype: str, *, attachment: bool, name: str) -> Response:
    if path is None:
        abort(404)
    response = send_file(path, mimetype=mimetype, as_attachment=attachment,
                         download_name=name, etag=False, max_age=0)
    response.headers.update(FILE_HEADERS)
    return response


@bp.route("/<int:case_id>/evidence/<int:evidence_id>")
@access(STAFF)
def download(case_id: int, evidence_id: int) -> ResponseReturnValue:
    row = _row(case_id, evidence_id)
    return _send(evidence.file_path(row), row.content_type, attachment=True,
                 name=row.original_name)


@bp.route("/<int:case_id>/evidence/<int:evidence_id>/thumbnail")
@access(STAFF)
def thumbnail(case_id: int, evidence_id: int) -> ResponseReturnValue:
    """Inline, as an <img>: bytes we encoded ourselves, PNG or JPEG like the image."""
    row = _row(case_id, evidence_id)
    return _send(evidence.file_path(row, thumbnail=True), row.content_type, attachment=False,
                 name=f"thumbnail{evidence_files.EXTENSIONS[row.content_type]}")
