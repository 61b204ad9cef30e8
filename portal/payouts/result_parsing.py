"""Reading a bank's result file: a CSV, an ISO 20022 ``camt.054`` debit/credit notification
or a ``pain.002`` payment status report, told apart by their content. Each becomes the same
list of :class:`ResultLine`; nothing here touches the database.

The XML is parsed with a parser that fetches nothing and expands no entity, and a file with a
document type declaration is refused outright. Any error in the file itself (unreadable, a
missing column, an unknown status, a broken amount) refuses the whole file, naming its line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

from lxml import etree

from portal.errors import RuleViolation
from portal.i18n import N_, Message
from portal.imports import detect_encoding, read_records

CSV, CAMT054, PAIN002 = "csv", "camt.054", "pain.002"
FORMATS = (CSV, CAMT054, PAIN002)
PAID, REJECTED = "paid", "rejected"
CSV_COLUMNS = ("end_to_end_id", "status", "amount", "currency", "bank_ref", "reason")
CSV_REQUIRED = ("end_to_end_id", "status", "amount", "currency")
CSV_OPTIONAL = ("batch_ref",)
# What a CSV's status cell may say (English or Chinese, as banks' exports do).
CSV_STATUSES = {"paid": PAID, "ok": PAID, "success": PAID, "已付": PAID, "成功": PAID,
                "rejected": REJECTED, "failed": REJECTED, "退回": REJECTED, "失败": REJECTED}
PAIN002_PAID = {"ACSC", "ACCP", "ACSP", "ACWC"}
PAIN002_REJECTED = {"RJCT"}
CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
AMOUNT_RE = re.compile(r"^[0-9]{1,12}(?:\.[0-9]{1,2})?$")
MAX_ID = 35  # an ISO 20022 Max35Text


@dataclass
class ResultLine:
    """One payment's outcome as the bank reports it. ``status`` is None when the bank says
    it is not final yet (a camt.054 entry still pending): reported, nothing changed."""

    number: int  # the line of a CSV, or the position of the transaction in the XML
    end_to_end_id: str
    status: str | None
    amount: Decimal | None
    currency: str
    bank_ref: str = ""
    reason: str = ""


@dataclass
class ParsedResult:
    format: str
    # The batch or original message the file says it answers (None when it names none).
    batch_ref: str | None
    lines: list[ResultLine] = field(default_factory=list)


def _refuse(message: Message) -> RuleViolation:
    return RuleViolation(message, field="file")


def parse_result_file(path: Path) -> ParsedResult:
    """The file's lines, or RuleViolation (field ``file``) saying why it cannot be read."""
    with path.open("rb") as fh:
        head = fh.read(512).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"<"):
        return _parse_xml(path)
    return _parse_csv(path)


# --- CSV ------------------------------------------------------------------------------------


def _amount(text: str, line: int) -> Decimal:
    raw = text.strip()
    if not AMOUNT_RE.fullmatch(raw):
        raise _refuse(N_("Line %(line)d: the amount %(amount)s is not a plain decimal amount "
                      "such as 1280.50.", line=line, amount=raw[:40]))
    try:
        return Decimal(raw).quantize(Decimal("0.01"))
    except InvalidOperation:  # pragma: no cover - the pattern admits only plain decimals
        raise _refuse(N_("Line %(line)d: the amount %(amount)s is not a plain decimal amount "
                      "such as 1280.50.", line=line, amount=raw[:40])) from None


def _currency(text: str, line: int) -> str:
    raw = text.strip().upper()
    if not CURRENCY_RE.fullmatch(raw):
        raise _refuse(N_("Line %(line)d: the currency %(currency)s is not a three-letter ISO "
                      "4217 code.", line=line, currency=text.strip()[:10]))
    return raw


def _end_to_end(text: str, line: int) -> str:
    raw = text.strip()
    if not raw or len(raw) > MAX_ID:
        raise _refuse(N_("Line %(line)d: the end-to-end id is empty or longer than 35 "
                      "characters.", line=line))
    return raw


def _parse_csv(path: Path) -> ParsedResult:
    encoding = detect_encoding(path)
    records = read_records(path, encoding)
    header = next(records, None)
    if header is None or header.error is not None:
        raise _refuse(N_("The file is empty or its first line is not a CSV header."))
    names = [h.strip().lstrip("\ufeff").lower() for h in header.cells]
    missing = [c for c in CSV_REQUIRED if c not in names]
    if missing:
        raise _refuse(N_("This is neither a result CSV nor an ISO 20022 camt.054 or pain.002 "
                      "file: missing column(s) %(cols)s. Expected: %(all)s.",
                      cols=", ".join(missing), all=", ".join(CSV_COLUMNS)))
    result = ParsedResult(CSV, None)
    batch_refs: set[str] = set()
    for record in records:
        if record.error is not None:
            raise RuleViolation(record.error, field="file")
        if not any(cell.strip() for cell in record.cells):
            continue
        if len(record.cells) > len(names):
            raise _refuse(N_("Line %(line)d has more cells than the header has columns.",
                          line=record.line))
        raw = {name: record.cells[i].strip() if i < len(record.cells) else ""
               for i, name in enumerate(names)}
        status = CSV_STATUSES.get(raw["status"].lower())
        if status is None:
            raise _refuse(N_("Line %(line)d: the status %(status)s is neither paid nor "
                          "rejected.", line=record.line, status=raw["status"][:20]))
        if raw.get("batch_ref"):
            batch_refs.add(raw["batch_ref"])
        result.lines.append(ResultLine(
            record.line, _end_to_end(raw["end_to_end_id"], record.line), status,
            _amount(raw["amount"], record.line), _currency(raw["currency"], record.line),
            raw.get("bank_ref", "")[:64], raw.get("reason", "")[:500]))
    if len(batch_refs) > 1:
        raise _refuse(N_("The file names several batches (%(refs)s); a result file answers one "
                      "batch.", refs=", ".join(sorted(batch_refs))[:200]))
    result.batch_ref = batch_refs.pop() if batch_refs else None
    if not result.lines:
        raise _refuse(N_("The file holds no result line."))
    return result


# --- ISO 20022 ------------------------------------------------------------------------------


def safe_parser() -> etree.XMLParser:
    """No network, no entity expansion, no DTD: what a file from outside may be read with."""
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                           dtd_validation=False, huge_tree=False, remove_comments=True)


def _local(tag: object) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def _find(element: etree._Element | None, *path: str) -> etree._Element | None:
    """The first descendant along ``path`` of local names (namespaces vary by version)."""
    for name in path:
        if element is None:
            return None
        element = next((c for c in element if _local(c.tag) == name), None)
    return element


def _text(element: etree._Element | None, *path: str) -> str:
    found = _find(element, *path)
    return (found.text or "").strip() if found is not None else ""


def _children(element: etree._Element | None, name: str) -> list[etree._Element]:
    return [] if element is None else [c for c in element if _local(c.tag) == name]


def _xml_amount(element: etree._Element | None, number: int) -> tuple[Decimal, str]:
    if element is None:
        raise _refuse(N_("Transaction %(line)d has no amount.", line=number))
    return (_amount(element.text or "", number),
            _currency(element.get("Ccy", ""), number))


def _parse_xml(path: Path) -> ParsedResult:
    try:
        tree = etree.parse(str(path), safe_parser())
    except etree.XMLSyntaxError as err:
        raise _refuse(N_("The XML cannot be read: %(error)s", error=str(err)[:200])) from None
    if tree.docinfo.doctype:
        raise _refuse(N_("The XML declares a document type (DTD); bank files never do, so it "
                      "is refused."))
    root = tree.getroot()
    body = root[0] if _local(root.tag) == "Document" and len(root) else root
    kind = _local(body.tag)
    if kind == "BkToCstmrDbtCdtNtfctn":
        return _parse_camt054(body)
    if kind == "CstmrPmtStsRpt":
        return _parse_pain002(body)
    raise _refuse(N_("The XML is neither a camt.054 notification nor a pain.002 status report "
                  "(it is %(kind)s).", kind=kind[:60]))


def _entry_status(entry: etree._Element) -> str:
    status = _find(entry, "Sts")
    if status is None:
        return ""
    code = _text(status, "Cd")  # camt.054 version 8 and later: <Sts><Cd>BOOK</Cd></Sts>
    return (code or (status.text or "")).strip().upper()


def _parse_camt054(body: etree._Element) -> ParsedResult:
    result = ParsedResult(CAMT054, None)
    original_ids: set[str] = set()
    number = 0
    for notification in _children(body, "Ntfctn"):
        for entry in _children(notification, "Ntry"):
            booked = _entry_status(entry)
            entry_ref = _text(entry, "AcctSvcrRef")
            details = [tx for d in _children(entry, "NtryDtls") for tx in _children(d, "TxDtls")]
            for tx in details:
                number += 1
                e2e = _end_to_end(_text(tx, "Refs", "EndToEndId"), number)
                amount_el = (_find(tx, "Amt") if _find(tx, "Amt") is not None
                             else _find(tx, "AmtDtls", "TxAmt", "Amt"))
                if amount_el is None and len(details) == 1:
                    amount_el = _find(entry, "Amt")
                amount, currency = _xml_amount(amount_el, number)
                if _text(tx, "Refs", "MsgId"):
                    original_ids.add(_text(tx, "Refs", "MsgId"))
                returned = _find(tx, "RtrInf")
                if returned is not None:
                    status: str | None = REJECTED
                    reason = (_text(returned, "Rsn", "Cd") or _text(returned, "Rsn", "Prtry")
                              or " ".join(_text(returned, "AddtlInf").split()))
                else:
                    status = PAID if booked == "BOOK" else None
                    reason = "" if status else f"entry status {booked or '?'}"
                result.lines.append(ResultLine(
                    number, e2e, status, amount, currency,
                    (_text(tx, "Refs", "AcctSvcrRef") or entry_ref)[:64], reason[:500]))
    if not result.lines:
        raise _refuse(N_("The camt.054 file holds no transaction with an end-to-end id."))
    result.batch_ref = original_ids.pop() if len(original_ids) == 1 else None
    return result


def _parse_pain002(body: etree._Element) -> ParsedResult:
    group = _find(body, "OrgnlGrpInfAndSts")
    result = ParsedResult(PAIN002, _text(group, "OrgnlMsgId") or None)
    number = 0
    for payment in _children(body, "OrgnlPmtInfAndSts"):
        for tx in _children(payment, "TxInfAndSts"):
            number += 1
            e2e = _end_to_end(_text(tx, "OrgnlEndToEndId"), number)
            code = (_text(tx, "TxSts") or _text(payment, "PmtInfSts")).upper()
            if code in PAIN002_PAID:
                status: str | None = PAID
            elif code in PAIN002_REJECTED:
                status = REJECTED
            else:
                status = None
            reason_info = _find(tx, "StsRsnInf")
            reason = (_text(reason_info, "Rsn", "Cd") or _text(reason_info, "Rsn", "Prtry")
                      or " ".join(_text(reason_info, "AddtlInf").split()))
            if status is None:
                reason = reason or f"status {code or '?'}"
            reference = _find(tx, "OrgnlTxRef")
            amount_el = (_find(reference, "Amt", "InstdAmt")
                         if reference is not None else None)
            amount, currency = (_xml_amount(amount_el, number) if amount_el is not None
                                else (None, ""))
            result.lines.append(ResultLine(number, e2e, status, amount, currency,
                                           (_text(tx, "AcctSvcrRef") or _text(tx, "StsId"))[:64],
                                           reason[:500]))
    if not result.lines:
        raise _refuse(N_("The pain.002 report holds no transaction status (TxInfAndSts)."))
    return result
