"""PostgreSQL-side bulk generation for bench/generate_cases.py at a million cases: one
``INSERT … SELECT … FROM generate_series`` for the customers and one for the cases, with the
same distributions as the Python generator (names, companies, e-mail domains, statuses,
currencies, kinds, assignees, log-normal amounts, SLA-based due dates, ids rising with
created_at). Rows never travel through Python; 1M cases take about a minute, not fifteen.
The database's ``setseed`` makes a run repeatable."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import text

from portal.extensions import db


def _pick(name: str) -> str:
    """One element of the array parameter ``name``, uniformly (volatile: per row)."""
    kind = "int[]" if name == "assignees" else "text[]"
    return (f"(CAST(:{name} AS {kind}))"
            f"[1 + floor(random() * cardinality(CAST(:{name} AS {kind})))::int]")


def customers(n: int, event_ids: list[int], now: datetime, seed: int, data: Any) -> None:
    """``n`` customers: 60 % Chinese names (surname + one or two given characters, pinyin
    e-mail), the rest Latin ones; the first half of the event shares as in EVENTS."""
    cut1 = int(n * data.EVENTS[0]["share"])
    cut2 = cut1 + int(n * data.EVENTS[1]["share"])
    surnames = list(data.SURNAMES)
    latin_first = [f.lower().encode("ascii", "ignore").decode() for f in data.FIRST]
    latin_last = [ln.lower().replace("'", "").encode("ascii", "ignore").decode()
                  for ln in data.LAST]
    db.session.execute(text("SELECT setseed(:s)"), {"s": (seed % 1000) / 1000})
    db.session.execute(text(f"""
        INSERT INTO customer (event_id, external_ref, name, company, email, phone, locale,
                              tags, created_at, updated_at, audit_salt)
        SELECT CASE WHEN g <= :cut1 THEN :e1 WHEN g <= :cut2 THEN :e2 ELSE :e3 END,
               'CUST-' || CASE WHEN g < 1000000 THEN lpad(g::text, 6, '0') ELSE g::text END,
               CASE WHEN zh THEN (CAST(:surnames AS text[]))[si] || (CAST(:given AS text[]))[g1]
                                 || CASE WHEN two THEN (CAST(:given AS text[]))[g2] ELSE '' END
                    ELSE (CAST(:first AS text[]))[fi] || ' ' || (CAST(:last AS text[]))[li] END,
               company,
               CASE WHEN zh THEN (CAST(:pinyin AS text[]))[si] || '.' || syl || g
                    ELSE (CAST(:lfirst AS text[]))[fi] || '.'
                         || (CAST(:llast AS text[]))[li] || g END || '@' || domain,
               '+86 1' || (30 + floor(random() * 69))::int || ' '
                   || (1000 + floor(random() * 8999))::int || ' '
                   || (1000 + floor(random() * 8999))::int,
               CASE WHEN zh THEN 'zh_CN' ELSE 'en' END,
               (CAST(:tags AS text[]))[1 + floor(random() * 5)::int]::json,
               created, created, md5(random()::text) || md5(random()::text)
        FROM (SELECT g, random() < 0.6 AS zh, random() < 0.5 AS two,
                     1 + floor(random() * cardinality(CAST(:surnames AS text[])))::int AS si,
                     1 + floor(random() * cardinality(CAST(:given AS text[])))::int AS g1,
                     1 + floor(random() * cardinality(CAST(:given AS text[])))::int AS g2,
                     1 + floor(random() * cardinality(CAST(:first AS text[])))::int AS fi,
                     1 + floor(random() * cardinality(CAST(:last AS text[])))::int AS li,
                     {_pick("syllables")} AS syl, {_pick("companies")} AS company,
                     {_pick("domains")} AS domain,
                     CAST(:now AS timestamptz) - interval '150 days'
                         - floor(random() * 60 * 24 * 30) * interval '1 minute' AS created
              FROM generate_series(1, :n) AS g) AS r
        ORDER BY g
    """), {
        "n": n, "cut1": cut1, "cut2": cut2, "e1": event_ids[0], "e2": event_ids[1],
        "e3": event_ids[2], "surnames": surnames, "given": list(data.GIVEN),
        "pinyin": [data.PINYIN[s] for s in surnames], "first": list(data.FIRST),
        "last": list(data.LAST), "lfirst": latin_first, "llast": latin_last,
        "syllables": ["wei", "fang", "na", "min", "jing"], "companies": list(data.COMPANIES),
        "domains": list(data.DOMAINS),
        "tags": ["[]", "[]", '["vip"]', '["enterprise"]', '["b2c"]'], "now": now,
    })


def cases(count: int, sla: dict[int, int], agent_id: int, admin_id: int, now: datetime,
          year: int, data: Any) -> None:
    """``count`` cases of random customers (their event), opened over the last 120 days."""
    expand = data._expand
    statuses, currencies = expand(data.STATUSES), expand(data.CURRENCIES)
    assignees: list[int | None] = [agent_id] * 45 + [admin_id] * 35 + [None] * 20
    db.session.execute(text(f"""
        INSERT INTO case_file (ref, event_id, customer_id, kind, order_ref, amount, currency,
                               reason, description, assignee_id, status, due_at,
                               approved_amount, created_by_id, created_at, updated_at,
                               lock_version)
        SELECT 'C-' || :year || '-' || CASE WHEN n < 100000 THEN lpad(n::text, 5, '0')
                                            ELSE n::text END,
               c.event_id, c.id, CASE WHEN r.refund THEN 'refund' ELSE 'compensation' END,
               (CAST(:shops AS text[]))[1 + n % cardinality(CAST(:shops AS text[]))] || '-'
                   || CASE WHEN n < 10000000 THEN lpad(n::text, 7, '0') ELSE n::text END,
               r.amount, r.currency, r.reason, '', r.assignee, r.status,
               r.created + (CAST(:sla_hours AS int[]))[c.event_id - :first_event + 1] * r.sla_factor
                   * interval '1 hour',
               CASE WHEN r.status IN ('approved', 'paid', 'closed') THEN r.amount END,
               :agent, r.created, r.created, 1
        FROM (SELECT n, random() < 0.62 AS refund, cur AS currency,
                     ((CASE WHEN cur = 'CNY' THEN cents ELSE cents / 7 + 100 END)
                      / 100.0)::numeric(14, 2) AS amount,
                     cust, reason, assignee, status, sla_factor,
                     CAST(:now AS timestamptz)
                         - (:span * (:count - n)::float8 / :count + random())
                           * interval '1 minute' AS created
              FROM (SELECT n, {_pick("currencies")} AS cur,
                           -- log-normal(10.5, 1.1) cents (Box-Muller), as lognormvariate
                           floor(exp(10.5 + 1.1 * sqrt(-2 * ln(1 - random()))
                                     * cos(2 * pi() * random())))::bigint + 100 AS cents,
                           :cmin + floor(random() * :ccount)::int AS cust,
                           {_pick("reasons")} AS reason, {_pick("assignees")} AS assignee,
                           {_pick("statuses")} AS status,
                           (ARRAY[1, 1, 1, 2, 4])[1 + floor(random() * 5)::int] AS sla_factor
                    FROM generate_series(1, :count) AS n) AS raw) AS r
        JOIN customer AS c ON c.id = r.cust
        ORDER BY n
    """), {
        "count": count, "year": str(year), "shops": list(data.SHOPS),
        "sla_hours": [sla[e] for e in sorted(sla)], "first_event": min(sla),
        "currencies": currencies, "reasons": list(data.REASONS), "assignees": assignees,
        "statuses": statuses, "agent": agent_id, "now": now, "span": 120 * 24 * 60,
        "cmin": db.session.scalar(text("SELECT min(id) FROM customer")),
        "ccount": db.session.scalar(text("SELECT count(*) FROM customer")),
    })
