"""Bank profiles of the payout CSV: which columns, in which order, under which headers, in
which encoding. Two are built in — ``generic`` (UTF-8 with a BOM, English headers) and
``cn-bank`` (GB18030, Chinese headers, as Chinese banks' bulk-payment uploads expect) — and
``PAYOUT_CSV_PROFILES`` in the app's config adds or replaces profiles::

    PAYOUT_CSV_PROFILES = {"my-bank": {"encoding": "utf-8", "delimiter": ";",
                                       "columns": [["end_to_end_id", "Ref"], ["amount", "Amt"]]}}

A column is one of :data:`FIELDS`.
"""

from __future__ import annotations

import codecs
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import current_app
from flask_babel import lazy_gettext as _l

# What a column may hold, for each line of the batch.
FIELDS = {
    "end_to_end_id": _l("End-to-end id (what the bank's results are matched by)"),
    "batch_ref": _l("Batch reference"),
    "case_ref": _l("Case reference"),
    "order_ref": _l("Order reference"),
    "customer_ref": _l("Customer's external reference"),
    "holder": _l("Account holder"),
    "account": _l("Account number or IBAN"),
    "bank": _l("Bank"),
    "amount": _l("Amount"),
    "currency": _l("Currency"),
    "remittance": _l("Payment reference for the customer"),
}


@dataclass(frozen=True)
class CsvProfile:
    name: str
    label: Any  # str, or a lazily translated one
    encoding: str  # a Python codec; "utf-8-sig" writes a BOM
    columns: tuple[tuple[str, str], ...]  # (field, header)
    delimiter: str = ","

    @property
    def fields(self) -> list[str]:
        return [field for field, _header in self.columns]

    @property
    def headers(self) -> list[str]:
        return [header for _field, header in self.columns]


BUILT_IN = {
    "generic": CsvProfile(
        "generic", _l("Generic (UTF-8)"), "utf-8-sig",
        (("end_to_end_id", "EndToEndId"), ("case_ref", "CaseRef"), ("order_ref", "OrderRef"),
         ("holder", "AccountHolder"), ("account", "Account"), ("bank", "Bank"),
         ("amount", "Amount"), ("currency", "Currency"), ("remittance", "Remittance"))),
    "cn-bank": CsvProfile(
        "cn-bank", _l("Chinese banks' bulk payment (GB18030)"), "gb18030",
        (("end_to_end_id", "业务参考号"), ("holder", "收款人户名"), ("account", "收款账号"),
         ("bank", "收款银行"), ("amount", "金额"), ("currency", "币种"),
         ("remittance", "用途"))),
}


def _configured(name: str, spec: Mapping[str, Any]) -> CsvProfile:
    """A profile from the config, checked now so a mistake shows when the page asks."""
    columns = tuple((str(field), str(header)) for field, header in spec["columns"])
    unknown = [field for field, _header in columns if field not in FIELDS]
    if unknown or not columns:
        raise ValueError(f"payout CSV profile {name!r}: unknown or no columns {unknown}")
    encoding = codecs.lookup(str(spec.get("encoding", "utf-8-sig"))).name
    return CsvProfile(name, str(spec.get("label", name)), encoding, columns,
                      str(spec.get("delimiter", ",")))


def profiles() -> dict[str, CsvProfile]:
    """The built-in profiles and those of ``PAYOUT_CSV_PROFILES``."""
    extra = current_app.config.get("PAYOUT_CSV_PROFILES") or {}
    return {**BUILT_IN, **{name: _configured(name, spec) for name, spec in extra.items()}}


def profile(name: str) -> CsvProfile | None:
    return profiles().get(name)
