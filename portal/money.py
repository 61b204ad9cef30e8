"""Money: one parser for every amount a person types, and one column type for every amount
stored. An amount is a ``Decimal`` end to end; it never passes through a binary float.

The scale is two decimal places (hundredths of the currency unit) for every currency, up to
``MAX_AMOUNT``. PostgreSQL stores ``NUMERIC(14, 2)``. SQLite has no decimal type (its NUMERIC
affinity keeps 0.10 as the REAL 0.1000000000000000055…, and ``SUM`` adds those floats), so
there the column holds the amount in integer hundredths and SQL aggregates add integers.
"""

from __future__ import annotations

import operator
import re
from decimal import Decimal
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import BigInteger, Numeric
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from portal.errors import RuleViolation

SCALE = 2
CENT = Decimal(1).scaleb(-SCALE)
MAX_AMOUNT = Decimal("10000000.00")
MAX_LENGTH = 32  # longer text is no amount a person typed

# Plain decimal notation in ASCII digits: optional minus (refused below with its own message),
# digits either ungrouped or in comma groups of three, an optional point with digits after it.
# No exponent, no underscores, no other scripts' digits, no sign "+", no bare "." at either end.
PLAIN_DECIMAL = re.compile(r"-?(?:[0-9]+|[0-9]{1,3}(?:,[0-9]{3})+)(?:\.[0-9]+)?")
# What a Chinese input method types in full width: digits, point and comma.
FULL_WIDTH = str.maketrans("０１２３４５６７８９．，", "0123456789.,")


def parse_amount(text: str | Decimal, field: str = "amount") -> Decimal:
    """A positive amount with at most two decimals, at most MAX_AMOUNT, quantized to cents.
    Never a float, never rounded silently: 10.005 is refused, not turned into 10.01."""
    if isinstance(text, float):
        raise RuleViolation(_("Amounts are never floats."), field=field)
    if isinstance(text, Decimal):
        amount = text
        if not amount.is_finite():
            raise RuleViolation(_("Enter an amount such as 1280.50."), field=field)
    else:
        raw = str(text).strip().translate(FULL_WIDTH)
        if not raw:
            raise RuleViolation(_("Enter an amount such as 1280.50."), field=field)
        if len(raw) > MAX_LENGTH or not PLAIN_DECIMAL.fullmatch(raw):
            raise RuleViolation(_("Enter the amount in ordinary digits with an optional "
                                  "decimal point, such as 1280.50."), field=field)
        amount = Decimal(raw.replace(",", ""))
    if amount <= 0:
        raise RuleViolation(_("The amount must be more than zero."), field=field)
    if amount > MAX_AMOUNT:  # before quantize, which cannot hold 1e100 in 28 digits
        raise RuleViolation(_("The amount is above the limit of %(max)s.", max=MAX_AMOUNT),
                            field=field)
    if amount != amount.quantize(CENT):
        raise RuleViolation(_("At most two decimal places."), field=field)
    return amount.quantize(CENT)


class Money(TypeDecorator[Decimal]):
    """An exact amount at ``SCALE``: NUMERIC on PostgreSQL, integer hundredths on SQLite.

    ``func.sum(column)`` keeps this type, so a SQL sum comes back through the same
    conversion as a single amount. A float, or a value with more decimals than the scale, is
    refused when written rather than rounded."""

    impl = Numeric(14, SCALE, asdecimal=True)
    cache_ok = True

    def coerce_compared_value(self, op: Any, value: Any) -> Any:
        """A plain number scaling an amount (``amount * 2``) is a number, not an amount; an
        amount compared with or added to another is converted like the column."""
        if op in (operator.mul, operator.truediv, operator.floordiv):
            return Numeric()
        return self

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(14, SCALE, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, float) or not isinstance(value, Decimal | int | str):
            raise TypeError(f"money must be a Decimal, not {type(value).__name__}")
        amount = Decimal(value)
        if not amount.is_finite() or amount != amount.quantize(CENT):
            raise ValueError(f"{value!r} is not an amount at {SCALE} decimal places")
        if dialect.name == "sqlite":
            return int(amount.scaleb(SCALE))
        return amount.quantize(CENT)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            if not isinstance(value, int):
                raise TypeError(f"money stored as {type(value).__name__} {value!r}, "
                                "not integer hundredths")
            return Decimal(value).scaleb(-SCALE)
        return Decimal(value).quantize(CENT)
