"""Verification codes: "is this really from us?" (查验通知真伪).

Every published notice version, every mailing message and every notice PDF carries a short
code a reader can check at ``/verify``. A code is an HMAC with ``VERIFICATION_KEY`` (kept
outside the database like the other keys, see ``portal.config``) of what it was issued for and
the version's content hash — the hash legal's sign-off binds — cut to 50 bits and written as
10 characters of Crockford's base32 (no I, L, O, U: nothing to mistake for 1 or 0). Codes are
stored where they are issued (the publication, the mailing recipient), so a lookup is one
indexed query and rotating the key never voids a code already printed or sent; the key only
makes codes impossible to forge or guess (2^50 ≈ 10^15 possibilities, and the page is
rate-limited).

The code is shown *around* the approved text (page footer, mail footer, PDF footer): it is
never part of the content legal signs, so it cannot change the content hash.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from flask import current_app

# Crockford's base32: digits and letters without I, L, O, U.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
LENGTH = 10  # characters: 10 × 5 = 50 bits
BITS = LENGTH * 5
CONTEXT = b"aftercare-verify:v1:"
# What people type instead: the look-alikes Crockford's decoding maps back.
_LOOK_ALIKES = str.maketrans({"I": "1", "L": "1", "O": "0"})
_SEPARATORS = re.compile(r"[\s\-_.·—–]+")


def _key() -> bytes:
    return current_app.config["VERIFICATION_KEY"].encode()


def derive(kind: str, subject: str, content_hash: str) -> str:
    """The code of ``subject`` (e.g. a version's or a message's identity) of ``kind``, bound to
    the version's ``content_hash``: 10 characters of the alphabet."""
    message = CONTEXT + f"{kind}:{subject}:{content_hash}".encode()
    digest = hmac.new(_key(), message, hashlib.sha256).digest()
    number = int.from_bytes(digest[:8], "big") >> (64 - BITS)
    return "".join(ALPHABET[(number >> (5 * i)) & 31] for i in reversed(range(LENGTH)))


def version_code(version_id: int, content_hash: str) -> str:
    """The code of a published notice version (its public page and its PDFs)."""
    return derive("version", str(version_id), content_hash)


def message_code(mailing_id: int, customer_id: int, content_hash: str) -> str:
    """The code of one mailing's message to one customer: it names that message alone."""
    return derive("message", f"{mailing_id}:{customer_id}", content_hash)


def normalise(text: str | None) -> str | None:
    """The code someone typed or followed, in canonical form, or None when it cannot be a code:
    case, spaces and dashes do not matter, and I/L/O are read as 1/1/0."""
    if not text:
        return None
    cleaned = _SEPARATORS.sub("", text.strip().upper()).translate(_LOOK_ALIKES)
    if len(cleaned) != LENGTH or any(ch not in ALPHABET for ch in cleaned):
        return None
    return cleaned


def grouped(code: str | None) -> str:
    """``XXXXX-XXXXX``, as a reader sees and types it."""
    if not code:
        return ""
    return f"{code[:5]}-{code[5:]}"


def verify_url(code: str) -> str:
    """The absolute address of the code's check (the PDF's QR code, the mail footer)."""
    return f"{current_app.config['PORTAL_BASE_URL']}/verify/{grouped(code)}"


def qr_svg(url: str) -> str:
    """``url`` as an inline SVG QR code (medium error correction, black on white, the quiet
    zone of 4 modules the standard asks), to put in a page or a PDF: the PDF renderer fetches
    nothing, so it is drawn inline, not linked."""
    import segno

    qr = segno.make_qr(url, error="m")
    return qr.svg_inline(scale=3, border=4, dark="#000", light="#fff", omitsize=False)
