"""Human references such as ``C-2026-00001`` (cases) and ``N-2026-0001`` (notices): one counter
row per series and year, taken atomically, so two people creating at the same moment never
get the same number."""

from __future__ import annotations

from sqlalchemy import Integer, String, UniqueConstraint, insert, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from portal.errors import RuleViolation
from portal.extensions import db
from portal.models import utcnow


class RefCounter(db.Model):
    """Human references: one row per series, incremented atomically."""

    __tablename__ = "ref_counter"
    __table_args__ = (UniqueConstraint("name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(32))
    value: Mapped[int] = mapped_column(Integer, default=0)


def next_ref(prefix: str, digits: int, *, failure: str) -> str:
    """``{prefix}-YYYY-`` and the next number of that series, ``digits`` wide. ``failure`` is
    the rule violation's message if the series could not be read (it practically cannot)."""
    name = f"{prefix}-{utcnow().year}"
    for _attempt in range(5):
        value = db.session.execute(
            update(RefCounter).where(RefCounter.name == name)
            .values(value=RefCounter.value + 1).returning(RefCounter.value)
        ).scalar()
        if value is not None:
            return f"{name}-{value:0{digits}d}"
        try:
            with db.session.begin_nested():
                db.session.execute(insert(RefCounter).values(name=name, value=0))
        except IntegrityError:
            continue  # someone else created the series first
    raise RuleViolation(failure)


def reserve_refs(prefix: str, digits: int, count: int, *, failure: str) -> list[str]:
    """``count`` consecutive references of the series, taken with one atomic increment (bulk
    work, such as a programme's cases): the same numbers :func:`next_ref` would give one by
    one, never given to anyone else."""
    if count <= 0:
        return []
    name = f"{prefix}-{utcnow().year}"
    for _attempt in range(5):
        last = db.session.execute(
            update(RefCounter).where(RefCounter.name == name)
            .values(value=RefCounter.value + count).returning(RefCounter.value)
        ).scalar()
        if last is not None:
            return [f"{name}-{value:0{digits}d}" for value in range(last - count + 1, last + 1)]
        try:
            with db.session.begin_nested():
                db.session.execute(insert(RefCounter).values(name=name, value=0))
        except IntegrityError:
            continue  # someone else created the series first
    raise RuleViolation(failure)
