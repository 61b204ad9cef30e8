"""The preview of a programme before anything is created: one streamed pass over
:func:`portal.programmes.rules.compute` that keeps counters, totals, the amounts (for the
median and the histogram), the first sample and excluded rows, and the amount list's SHA-256.

Nothing is written. 100,000 customers take a few seconds (``bench/programme.py``).
"""

from __future__ import annotations

import hashlib
import time
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal

from portal.programmes.models import Programme
from portal.programmes.rules import (
    EXCLUSION_LABELS,
    Row,
    Rules,
    amount_line,
    compute,
    round_half_up,
)

SAMPLE_SIZE = 20
EXCLUDED_SAMPLE_SIZE = 20
HISTOGRAM_BUCKETS = 10


@dataclass(frozen=True)
class Bucket:
    """Amounts from ``low`` (inclusive) to ``high`` (inclusive for the last bucket)."""

    low: Decimal
    high: Decimal
    count: int
    percent: int  # of the fullest bucket, for the bar's width


@dataclass
class Preview:
    """What the programme would pay, per the rules as they stand."""

    rules: Rules
    currency: str
    customers: int = 0
    eligible_count: int = 0
    totals: dict[str, Decimal] = field(default_factory=dict)
    minimum: Decimal | None = None
    median: Decimal | None = None
    maximum: Decimal | None = None
    histogram: list[Bucket] = field(default_factory=list)
    samples: list[Row] = field(default_factory=list)
    excluded: list[Row] = field(default_factory=list)
    excluded_counts: dict[str, int] = field(default_factory=dict)
    low_value_paid_count: int = 0
    low_value_paid_total: Decimal = Decimal("0.00")
    written_off_count: int = 0
    written_off_total: Decimal = Decimal("0.00")
    budget: Decimal | None = None
    amounts_sha256: str = ""
    seconds: float = 0.0

    @property
    def total(self) -> Decimal:
        return self.totals.get(self.currency, Decimal("0.00"))

    @property
    def over_budget(self) -> bool:
        return self.budget is not None and self.total > self.budget

    @property
    def excluded_reasons(self) -> list[tuple[str, str, int]]:
        """(code, label, count), most frequent first."""
        return [(code, str(EXCLUSION_LABELS.get(code, code)), count) for code, count in
                sorted(self.excluded_counts.items(), key=lambda item: (-item[1], item[0]))]


def median(ordered: list[Decimal]) -> Decimal | None:
    """The middle amount of a sorted list (the mean of the two middle ones, exact)."""
    if not ordered:
        return None
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def histogram(ordered: list[Decimal], buckets: int = HISTOGRAM_BUCKETS) -> list[Bucket]:
    """Equal-width buckets from the smallest to the largest amount of a sorted list."""
    if not ordered:
        return []
    low, high = ordered[0], ordered[-1]
    if low == high:
        return [Bucket(low, high, len(ordered), 100)]
    width = (high - low) / buckets
    edges = [low + width * i for i in range(buckets)] + [high]
    counts = []
    start = 0
    for i in range(buckets):
        end = len(ordered) if i == buckets - 1 else bisect_right(ordered, edges[i + 1], lo=start)
        # the upper edge belongs to the next bucket, except for the last one
        if i < buckets - 1:
            while end > start and ordered[end - 1] == edges[i + 1]:
                end -= 1
        counts.append(end - start)
        start = end
    fullest = max(counts) or 1
    return [Bucket(edges[i].quantize(Decimal("0.01")), edges[i + 1].quantize(Decimal("0.01")),
                   count, round(count * 100 / fullest)) for i, count in enumerate(counts)]


def preview(programme: Programme, rules: Rules | None = None) -> Preview:
    """One pass over the event's customers; raises ``RuleViolation`` for rules that do not
    parse."""
    started = time.perf_counter()
    rules = rules or Rules.parse(programme.rules)
    result = Preview(rules=rules, currency=programme.currency, budget=programme.budget)
    amounts: list[Decimal] = []
    totals: dict[str, Decimal] = {}
    reasons: Counter[str] = Counter()
    sha = hashlib.sha256()
    for row in compute(programme, rules):
        result.customers += 1
        if row.eligible:
            result.eligible_count += 1
            amounts.append(row.amount)
            totals[row.currency] = totals.get(row.currency, Decimal("0.00")) + row.amount
            sha.update(amount_line(row).encode())
            sha.update(b"\n")
            if row.low_value:
                result.low_value_paid_count += 1
                result.low_value_paid_total += row.amount
            if len(result.samples) < SAMPLE_SIZE:
                result.samples.append(row)
            continue
        reasons[row.excluded or ""] += 1
        if row.excluded == "written_off":
            result.written_off_count += 1
            result.written_off_total += row.amount
        if len(result.excluded) < EXCLUDED_SAMPLE_SIZE:
            result.excluded.append(row)
    amounts.sort()
    result.totals = totals or {programme.currency: Decimal("0.00")}
    result.excluded_counts = dict(reasons)
    if amounts:
        result.minimum, result.maximum = amounts[0], amounts[-1]
        # Shown like the amounts: in the currency's minor unit, half-up (2.5 of two middles).
        result.median = round_half_up(median(amounts), programme.currency)
    result.histogram = histogram(amounts)
    result.amounts_sha256 = sha.hexdigest()
    result.seconds = time.perf_counter() - started
    return result
