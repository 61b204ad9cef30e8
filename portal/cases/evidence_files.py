"""Evidence files: what an upload really is, the clean bytes we keep, and where they live.

The type comes from the content, never from the file's name or the browser's header:
``puremagic`` names it from its magic bytes, and only PDF, JPEG and PNG go on. That is a first
sieve, not proof (a PNG signature on an HTML body passes it), so each is then read for real:

- an image is decoded in full by Pillow (only its own format, at most ``MAX_PIXELS``) and
  re-encoded. What we keep is what we wrote, never the upload: trailing bytes (a polyglot's
  HTML or script after the image data) and every piece of metadata (EXIF with GPS position,
  XMP, ICC profiles, text chunks) are gone; the EXIF orientation is applied to the pixels
  first, so the picture still stands the right way up. A small thumbnail is made beside it.
- a PDF must start with ``%PDF-`` and pypdf must read its cross-reference table and find at
  least one page; an encrypted one is refused (staff could not open it). A PDF is kept as
  sent (re-writing it would change what the customer gave us); it is only ever served as a
  download (``Content-Disposition: attachment``, ``nosniff``, a sandboxing CSP).

Files are named by their SHA-256 under the instance's ``evidence/`` folder (``EVIDENCE_DIR``),
outside ``static/``: the same content is stored once, and storing it again is harmless.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
import unicodedata
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import puremagic
from flask_babel import gettext as _
from PIL import Image, ImageFile, ImageOps

from portal import config

MAX_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 40_000_000  # a 10 MB file may inflate to gigabytes of pixels: refused above this
THUMBNAIL_BOX = (320, 320)
PDF, JPEG, PNG = "application/pdf", "image/jpeg", "image/png"
EXTENSIONS = {PDF: ".pdf", JPEG: ".jpg", PNG: ".png"}
_PILLOW_FORMATS = {JPEG: "JPEG", PNG: "PNG"}
_NAME_FORBIDDEN = set('<>:"/\\|?*')
_STRICT = threading.Lock()


class Unacceptable(ValueError):
    """The upload is not evidence we keep; ``message`` says why, in the reader's language."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class CleanFile:
    """What we store for one upload: the kept bytes and, for an image, its thumbnail."""

    content_type: str
    data: bytes
    thumbnail: bytes | None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def too_large() -> str:
    return _("The file is larger than %(mb)d MB. Send a smaller scan or a screenshot.",
             mb=MAX_BYTES // (1024 * 1024))


def _wrong_type() -> Unacceptable:
    return Unacceptable(_("Only PDF, JPEG and PNG files are accepted; this file is none of "
                          "them."))


def _damaged(kind: str) -> Unacceptable:
    return Unacceptable(_("The file looks like a %(kind)s but cannot be read as one; it may "
                          "be damaged or disguised. Save it again and send the new copy.",
                          kind=kind))


def sniff(data: bytes) -> str:
    """The content type by the magic bytes alone, limited to the three we accept."""
    if not data:
        raise Unacceptable(_("The file is empty."))
    try:
        found = puremagic.from_string(data, mime=True)
    except puremagic.PureError:
        raise _wrong_type() from None
    if found not in EXTENSIONS:
        raise _wrong_type()
    return found


def clean(data: bytes) -> CleanFile:
    """The bytes to keep for an upload, or :class:`Unacceptable` with the reason."""
    if len(data) > MAX_BYTES:
        raise Unacceptable(too_large())
    content_type = sniff(data)
    if content_type == PDF:
        _check_pdf(data)
        return CleanFile(PDF, data, None)
    return _reencode(data, content_type)


@contextmanager
def _strict_decoding() -> Iterator[None]:
    """Pillow's switch for accepting cut-off images is process-wide, and importing WeasyPrint
    turns it on (``weasyprint/images.py``); with it on, a truncated or garbled image decodes
    as grey. Our decode needs it off: held off while we decode, then put back. (Our PDFs
    fetch no images, so WeasyPrint never needs it meanwhile.)"""
    with _STRICT:
        before, ImageFile.LOAD_TRUNCATED_IMAGES = ImageFile.LOAD_TRUNCATED_IMAGES, False
        try:
            yield
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = before


def _reencode(data: bytes, content_type: str) -> CleanFile:
    kind = _PILLOW_FORMATS[content_type]
    try:
        with _strict_decoding(), warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[kind]) as image:
                if image.width * image.height > MAX_PIXELS:
                    raise Unacceptable(_("The image is too large (more than %(n)d megapixels); "
                                         "send a smaller one.", n=MAX_PIXELS // 1_000_000))
                image.load()  # decode every pixel: a disguised body fails here
                pixels = _plain(ImageOps.exif_transpose(image), content_type)
        thumbnail = pixels.copy()
        thumbnail.thumbnail(THUMBNAIL_BOX)
        return CleanFile(content_type, _encode(pixels, kind), _encode(thumbnail, kind))
    except Unacceptable:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning,
            Image.DecompressionBombError):  # also a mode that converts to nothing we store
        raise _damaged(kind) from None


def _plain(image: Image.Image, content_type: str) -> Image.Image:
    """Pixels only, in a mode the format stores, with no metadata carried along."""
    keeps_alpha = content_type == PNG and (image.mode in ("RGBA", "LA", "PA")
                                           or "transparency" in image.info)
    plain = image.convert("RGBA" if keeps_alpha else "RGB")
    plain.info = {}
    return plain


def _encode(image: Image.Image, kind: str) -> bytes:
    out = io.BytesIO()
    if kind == "JPEG":
        image.save(out, "JPEG", quality=90, optimize=True)
    else:
        image.save(out, "PNG", optimize=True)
    return out.getvalue()


def _check_pdf(data: bytes) -> None:
    from pypdf import PdfReader

    if not data.startswith(b"%PDF-"):
        raise _damaged("PDF")
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        encrypted = reader.is_encrypted
        pages = 0 if encrypted else len(reader.pages)
    except Exception:  # a parser of untrusted bytes may raise anything: all of it is "damaged"
        raise _damaged("PDF") from None
    if encrypted:
        raise Unacceptable(_("The PDF is protected by a password; send a copy without one."))
    if pages < 1:
        raise _damaged("PDF")


def safe_name(name: str | None, content_type: str) -> str:
    """The name the file came with, kept for staff's download: no folders, no control or
    reserved characters, at most 120 characters, ending in the extension of what it really
    is (a JPEG sent as ``receipt.png`` downloads as ``receipt.jpg``)."""
    base = unicodedata.normalize("NFC", name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(" " if unicodedata.category(c)[0] in "CZ" or c in _NAME_FORBIDDEN else c
                   for c in base)
    stem = " ".join(base.rsplit(".", 1)[0].split()).strip(". ")[:120] or "evidence"
    return stem + EXTENSIONS[content_type]


# --- storage ---------------------------------------------------------------------------------

def storage_dir() -> Path:
    return config.instance_folder("evidence", "EVIDENCE_DIR")


def stored_path(sha256: str) -> Path:
    """Where the file with this SHA-256 is kept (the name is the hash: nothing typed)."""
    if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
        raise ValueError("not a SHA-256")
    return storage_dir() / sha256


def store(data: bytes) -> tuple[str, bool]:
    """Write ``data`` under its SHA-256 (atomically); return the hash and whether the file is
    new (so the caller may remove it again if its transaction rolls back)."""
    digest = hashlib.sha256(data).hexdigest()
    path = stored_path(digest)
    if path.exists():
        return digest, False
    tmp = path.with_name(f"{digest}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return digest, True
