"""Stored documents (PDFs): content-addressed files, named by their SHA-256, under
``PDF_DIR`` (the instance folder's ``pdf/`` by default), served to staff with the hash as
their ETag."""

from __future__ import annotations

import hashlib
from pathlib import Path

from flask import Response, current_app, send_file


def storage_dir() -> Path:
    path = Path(current_app.config.get("PDF_DIR") or Path(current_app.instance_path) / "pdf")
    path.mkdir(parents=True, exist_ok=True)
    return path


def stored_path(sha256: str) -> Path:
    """Where the PDF with this SHA-256 is kept."""
    return storage_dir() / f"{sha256}.pdf"


def send_stored(sha256: str, download_name: str) -> Response:
    """A stored PDF for staff, with its hash as the ETag (304 on revalidation)."""
    return send_file(stored_path(sha256), mimetype="application/pdf", etag=sha256,
                     conditional=True, download_name=download_name)


def store(data: bytes) -> tuple[str, Path]:
    """Content-addressed: the file is named by its SHA-256, so storing twice is harmless."""
    digest = hashlib.sha256(data).hexdigest()
    path = storage_dir() / f"{digest}.pdf"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.rename(path)
    return digest, path
