"""Evidence for the demo data and the crawl: a receipt photo and a receipt PDF, drawn in code
(no binary files in the repository), added to a case through the same services as uploads."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw
from werkzeug.datastructures import FileStorage

from portal.accounts import User
from portal.cases import evidence
from portal.cases.models import Case


def receipt_png(order_ref: str = "WD-20261122-001", amount: str = "1280.50") -> bytes:
    """A till receipt as a PNG image."""
    image = Image.new("RGB", (360, 480), "white")
    draw = ImageDraw.Draw(image)
    lines = ["RECEIPT", "", f"Order  {order_ref}", "Withdrawal fee", f"Amount CNY {amount}",
             "", "Paid by card", "Thank you"]
    for row, text in enumerate(lines):
        draw.text((32, 40 + row * 34), text, fill="black")
    draw.rectangle((20, 20, 339, 459), outline="gray", width=2)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def receipt_pdf(order_ref: str = "WD-20261122-001", amount: str = "1280.50") -> bytes:
    """A one-page PDF statement (Helvetica text), with a correct cross-reference table."""
    text = f"BT /F1 14 Tf 72 760 Td (Bank statement) Tj 0 -24 Td (Order {order_ref}) Tj " \
           f"0 -24 Td (Fee charged CNY {amount}) Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(text), text.encode()),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n"
              % (len(objects) + 1, xref))
    return out.getvalue()


def attach_receipts(case: Case, staff: User) -> None:
    """The customer's receipt photo and the bank statement staff received by e-mail."""
    evidence.add_from_customer(case, case.customer, FileStorage(
        io.BytesIO(receipt_png(case.order_ref, str(case.amount))), filename="收据.png"))
    evidence.add_from_staff(case, FileStorage(
        io.BytesIO(receipt_pdf(case.order_ref, str(case.amount))),
        filename="bank-statement.pdf"), actor=staff)
