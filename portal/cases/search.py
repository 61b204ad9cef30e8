"""The searchable case list: its filter, search, sorting and keyset pages, its count (exact
up to a threshold, estimated above it), and its CSV export."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Integer,
    Text,
    and_,
    any_,
    func,
    literal,
    literal_column,
    or_,
    select,
    tuple_,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY

from portal import exports
from portal.cases import rules
from portal.cases.models import Case
from portal.customers.models import Customer
from portal.extensions import db
from portal.models import utcnow

# Each sort is a key that is unique with the id and descends or ascends as a whole, so a
# page starts after the last row of the previous one with one row comparison, which a
# B-tree index on the same columns answers without reading the rows before it.
SORT_KEYS: dict[str, tuple[tuple[Any, ...], bool]] = {
    "newest": ((Case.created_at, Case.id), True),
    "oldest": ((Case.created_at, Case.id), False),
    "due": ((Case.due_at, Case.id), False),
    "amount": ((Case.amount, Case.id), True),
    "ref": ((Case.ref,), False),  # unique on its own
}
SORTS = SORT_KEYS  # the names the list accepts

SEARCH_ID_LIMIT = 5000  # more matching cases are tested row by row, not listed by id
CUSTOMER_LIMIT = 1500  # … and so are the cases of more matching customers
CUSTOMER_ARRAY_LIMIT = 20_000  # up to this many, PostgreSQL gets them as an array
SAMPLE_WINDOWS = 20  # the estimate reads this many id ranges spread over all cases …
SAMPLE_WINDOW = 250  # … of this many ids each


@dataclass
class Cursor:
    """Where a page starts: the sort key of the row it follows (or precedes)."""

    sort: str
    values: tuple[Any, ...]

    def encode(self) -> str:
        raw = [self.sort, *(_dump(v) for v in self.values)]
        return base64.urlsafe_b64encode(json.dumps(raw).encode()).decode().rstrip("=")

    @classmethod
    def of(cls, case: Case, sort: str) -> Cursor:
        columns, _desc = SORT_KEYS[sort]
        return cls(sort, tuple(getattr(case, c.key) for c in columns))

    @classmethod
    def decode(cls, token: str, sort: str) -> Cursor | None:
        """The cursor in a URL, or None when it is garbled or made for another sort (a
        sort change starts again at the first page)."""
        try:
            raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            if not isinstance(raw, list) or raw[0] != sort:
                return None
            columns, _desc = SORT_KEYS[sort]
            if len(raw) != len(columns) + 1:
                return None
            return cls(sort, tuple(_load(c, v) for c, v in zip(columns, raw[1:], strict=True)))
        except (ValueError, TypeError, KeyError, IndexError, InvalidOperation, binascii.Error):
            return None


def _dump(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _load(column: Any, value: Any) -> Any:
    if column is Case.id:
        if not isinstance(value, int) or not 0 < value < 2**63:
            raise ValueError(value)
        return value
    if column in (Case.created_at, Case.due_at):
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError(value)
        return parsed
    if column is Case.amount:
        return Decimal(value)
    if not isinstance(value, str):
        raise ValueError(value)
    return value


def customer_matches(low: str) -> ColumnElement[bool]:
    """Customers whose lower-cased name, e-mail or company contains ``low`` (LIKE wildcards
    typed by the user are escaped). On PostgreSQL pg_trgm's GIN indexes answer this from
    three characters; below three, the indexes of case_search_grams() (every character and
    pair of characters) do, and the e-mail is not searched."""
    columns = [Customer.name, Customer.company] if len(low) < 3 else [
        Customer.name, Customer.email, Customer.company]
    likes = [func.lower(c).contains(low, autoescape=True) for c in columns]
    if len(low) >= 3 or not low or db.session.get_bind().dialect.name != "postgresql":
        return or_(*likes)
    # strpos() checks the match, and unlike LIKE '%…%' the trigram index cannot take it (it
    # would, reading every row for a pattern without a trigram: seconds at a million).
    return or_(*(and_(func.case_search_grams(func.lower(c), type_=ARRAY(Text)).contains([low]),
                      func.strpos(func.lower(c), low) > 0) for c in columns))


def order_ref_prefix(low: str) -> ColumnElement[bool]:
    """Order refs starting with ``low``, case-insensitive: SQLite's LIKE is; on PostgreSQL
    lower(order_ref) LIKE 'x%' uses ix_case_order_ref_lower (text_pattern_ops, as the
    database's collation is not C)."""
    if db.session.get_bind().dialect.name == "postgresql":
        return func.lower(Case.order_ref).startswith(low, autoescape=True)
    return Case.order_ref.startswith(low, autoescape=True)


@dataclass
class Page:
    items: list[Case]
    next_cursor: str | None = None
    prev_cursor: str | None = None


@dataclass
class Count:
    value: int
    estimated: bool

    @property
    def shown(self) -> str:
        """An estimate to two significant digits, grouped ("57,000")."""
        if not self.estimated or self.value < 100:
            return f"{self.value:,}"
        digits = len(str(self.value)) - 2
        return f"{round(self.value, -digits):,}"


@dataclass
class CaseFilter:
    q: str = ""
    status: str = ""
    kind: str = ""
    event_id: int | None = None
    assignee_id: int | None = None
    overdue: bool = False
    sort: str = "newest"
    _conditions: list[Any] | None = field(default=None, repr=False)
    _many: bool = field(default=False, repr=False)  # a search with thousands of matches

    def conditions(self) -> list[Any]:
        """The WHERE conditions, all on the case's own columns (the search becomes a list of
        ids); built once, so the page, its count and its estimate share the search."""
        if self._conditions is not None:
            return self._conditions
        conds: list[Any] = []
        if self.q:
            conds.append(self._search())
        if self.status:
            conds.append(Case.status == self.status)
        if self.kind:
            conds.append(Case.kind == self.kind)
        if self.event_id:
            conds.append(Case.event_id == self.event_id)
        if self.assignee_id:
            conds.append(Case.assignee_id == self.assignee_id)
        if self.overdue:
            conds.append(self._overdue())
        self._conditions = conds
        return conds

    def _search(self) -> ColumnElement[bool]:
        """The search covers ref, order ref (its start) and the customer's name, e-mail and
        company anywhere in the word (a query under three characters, such as a Chinese
        given name, covers name and company only); case-insensitive."""
        q = self.q.strip()
        low = q.lower()
        customers = select(Customer.id).where(customer_matches(low))
        postgres = db.session.get_bind().dialect.name == "postgresql"
        # On PostgreSQL up to CUSTOMER_ARRAY_LIMIT customers are read once, here, and the
        # page and its estimate get them as one array (not the trigram search twice more).
        fetch = CUSTOMER_ARRAY_LIMIT if postgres else CUSTOMER_LIMIT
        found = db.session.scalars(customers.limit(fetch + 1)).all()
        by_ref = (Case.ref == q.upper(), order_ref_prefix(low))
        if len(found) <= CUSTOMER_LIMIT:
            # Each part on its own index (ref, order_ref, customer_id), at most
            # SEARCH_ID_LIMIT + 1 ids (UNION ALL stops there; a UNION gathers them all).
            parts = (*by_ref, Case.customer_id.in_(found))
            matches = union_all(*(select(Case.id).where(p) for p in parts))
            ids = set(db.session.scalars(matches.limit(SEARCH_ID_LIMIT + 1)))
            if len(ids) <= SEARCH_ID_LIMIT:
                # Searched once: the page and its count look the ids up by primary key.
                return Case.id.in_(sorted(ids))
        # Thousands match: the page walks the sort's index and tests each row (one in a few
        # hundred or more matches, so a page is found early); the count is estimated.
        self._many = True
        if postgres and len(found) <= CUSTOMER_ARRAY_LIMIT:
            return or_(*by_ref, Case.customer_id == any_(
                literal(list(found), ARRAY(Integer))))
        # A CTE: the estimate's id ranges then share one reading of the customers.
        matching = customers.cte("matching_customer")
        return or_(*by_ref, Case.customer_id.in_(select(matching.c.id)))

    def _overdue(self) -> ColumnElement[bool]:
        overdue = and_(Case.status.in_(rules.OPEN_BEFORE_PAYMENT), Case.due_at < utcnow())
        if self._walk_sort_index():
            # likelihood() is SQLite's planner hint; its probability must be a literal.
            return func.likelihood(overdue, literal_column("0.9"), type_=Boolean)
        return overdue

    def statement(self) -> Any:
        """The filtered, sorted query (all pages; the export streams it)."""
        return select(Case).where(*self.conditions()).order_by(*self.order_by())

    def order_by(self, reverse: bool = False) -> list[Any]:
        columns, desc = SORT_KEYS.get(self.sort, SORT_KEYS["newest"])
        return [c.desc() if desc != reverse else c.asc() for c in columns]

    def _after(self, cursor: Cursor, backwards: bool) -> ColumnElement[bool]:
        columns, desc = SORT_KEYS[self.sort]
        key = columns[0] if len(columns) == 1 else tuple_(*columns)
        bound = (literal(cursor.values[0], columns[0].type) if len(columns) == 1 else
                 tuple_(*(literal(v, c.type) for c, v in zip(columns, cursor.values,
                                                               strict=True))))
        return key < bound if desc != backwards else key > bound

    def page(self, *, after: str = "", before: str = "", size: int = 50,
             options: Sequence[Any] = ()) -> Page:
        """One page of ``size`` cases after (or before) a cursor, with the cursors of the
        pages beside it (None where there is none)."""
        if self.sort not in SORT_KEYS:
            self.sort = "newest"
        start = Cursor.decode(after, self.sort) if after else None
        end = Cursor.decode(before, self.sort) if before and not start else None
        backwards = end is not None
        stmt = select(Case).where(*self.conditions()).options(*options)
        if start or end:
            stmt = stmt.where(self._after(start or end, backwards))  # type: ignore[arg-type]
        rows = list(db.session.scalars(
            stmt.order_by(*self.order_by(reverse=backwards)).limit(size + 1)).unique())
        more = len(rows) > size
        rows = rows[:size]
        if backwards:
            rows.reverse()
        page = Page(rows)
        if rows:
            first, last = Cursor.of(rows[0], self.sort), Cursor.of(rows[-1], self.sort)
            if (more and not backwards) or backwards:
                page.next_cursor = last.encode()
            if (more and backwards) or start:
                page.prev_cursor = first.encode()
        return page

    def _walk_sort_index(self) -> bool:
        """For overdue cases SQLite's planner reads every open past-due case through
        ix_case_status_due (status IN … AND due_at < now: a range per status) and sorts them
        all for one page (250 ms at 100,000 cases). More than half the cases are overdue, so
        walking the sort's own index and stopping at the page's end reads a few thousand
        rows at most: the condition is marked likely (``likelihood(…, 0.9)``), and the
        planner then prefers the index that gives the order. Not with a search (a few ids:
        the primary key is better) or a status (ix_case_status_* then fits both)."""
        return bool(self.overdue and not self.q and not self.status
                    and db.session.get_bind().dialect.name == "sqlite")

    def count(self, threshold: int, exact: bool = False) -> Count:
        """How many cases match: exact when asked or when there are at most ``threshold``
        (a count that stops there), estimated otherwise."""
        base = select(Case.id).where(*self.conditions())
        if exact:
            return Count(db.session.scalar(
                select(func.count()).select_from(base.subquery())) or 0, False)
        if self._many:  # more than SEARCH_ID_LIMIT; counting up to a threshold reads far
            return Count(max(self.estimate(), SEARCH_ID_LIMIT + 1), True)
        bounded = db.session.scalar(
            select(func.count()).select_from(base.limit(threshold + 1).subquery())) or 0
        if bounded <= threshold:
            return Count(bounded, False)
        return Count(max(self.estimate(), threshold + 1), True)

    def estimate(self) -> int:
        """The matches among a sample of ids (SAMPLE_WINDOWS ranges spread evenly between
        the smallest and the largest id, so old and new cases alike), scaled to all ids.
        The same on both databases and independent of the planner's statistics (whose
        guess for several filters at once multiplies their selectivities)."""
        # Two queries: each is one step down the primary key; together, a scan on SQLite.
        low, high = (db.session.scalar(select(func.min(Case.id))),
                     db.session.scalar(select(func.max(Case.id))))
        if low is None or high is None:
            return 0
        span = high - low + 1
        windows = min(SAMPLE_WINDOWS, max(1, span // SAMPLE_WINDOW))
        step = span / windows
        ranges = [(low + int(i * step), low + int(i * step) + SAMPLE_WINDOW - 1)
                  for i in range(windows)]
        sampled = sum(min(b, high) - a + 1 for a, b in ranges)
        conds: list[Any] = list(self.conditions())
        if conds and db.session.get_bind().dialect.name == "sqlite":
            # Marked likely, the filters do not tempt SQLite's planner to walk their index
            # and test each row for the range; the range is read by the primary key.
            conds = [func.likelihood(and_(*conds), literal_column("0.99"), type_=Boolean)]
        # One part per range (UNION ALL): SQLite reads OR-ed rowid ranges by a full scan.
        parts = [select(Case.id).where(Case.id.between(a, b), *conds) for a, b in ranges]
        hits = db.session.scalar(select(func.count()).select_from(
            union_all(*parts).subquery())) or 0
        return round(hits * span / sampled)


CSV_COLUMNS = ["ref", "status", "kind", "event", "customer_ref", "customer", "company", "email",
               "order_ref", "amount", "currency", "approved_amount", "reason", "assignee",
               "due_at", "created_at", "payout_ref"]


def export_csv(flt: CaseFilter, batch: int = 1000) -> Iterator[str]:
    """Stream the filtered cases as CSV."""
    from sqlalchemy.orm import joinedload

    stmt = flt.statement().options(joinedload(Case.customer), joinedload(Case.event),
                                   joinedload(Case.assignee), joinedload(Case.payment))
    rows = ([c.ref, c.status, c.kind, c.event.title, c.customer.external_ref, c.customer.name,
             c.customer.company, c.customer.email, c.order_ref, c.amount, c.currency,
             c.approved_amount, c.reason, c.assignee.email if c.assignee else "", c.due_at,
             c.created_at, c.payment.payout_ref if c.payment else ""]
            for c in db.session.scalars(stmt.execution_options(yield_per=batch)))
    yield from exports.stream(CSV_COLUMNS, rows)
