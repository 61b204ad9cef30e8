"""Demo data: the demo event's entitlements, imported through the real import (checked, then
applied), so a new user finds them listed with their totals and can build a programme on them.
Orders with an open case are among them (a programme's "no open case for this order" rule
leaves those out), as are two currencies, attribute columns and one row with bank details."""

from __future__ import annotations

import io

from portal.accounts import User
from portal.events.models import Event
from portal.extensions import db
from portal.programmes import entitlements
from portal.programmes.models import EntitlementImport

DEMO_FILENAME = "demo-entitlements.csv"
DEMO_CSV = ("external_ref,order_ref,basis_amount,currency,basis_date,plan,region,"
            "account_holder,iban\n") + """\
CRM-10001,WD-20261122-001,1280.50,CNY,2026-11-22,gold,华东,,
CRM-10001,WD-20261120-105,15000.00,CNY,2026-11-20,gold,华东,,
CRM-10001,WD-20250618-007,420.00,CNY,2025-06-18,gold,华东,,
CRM-10002,WD-20261122-044,6500.00,CNY,2026-11-22,silver,华北,,
CRM-10002,WD-20261119-210,88.80,CNY,2026-11-19,silver,华北,,
CRM-10003,WD-20261122-017,8800.00,CNY,2026-11-22,basic,overseas,,
CRM-10003,WD-20261121-330,2450.00,USD,2026-11-21,basic,overseas,Anna Schmidt,\
DE89370400440532013000
"""


def seed_entitlements(event: Event, agent: User) -> EntitlementImport:
    """Upload, check, confirm and apply the demo file (in the seed's unit of work)."""
    batch = entitlements.start_import(event, io.BytesIO(DEMO_CSV.encode()), DEMO_FILENAME,
                                      actor=agent)
    entitlements.validate_import(batch.id)
    db.session.refresh(batch)
    entitlements.confirm_import(batch, actor=agent)
    entitlements.run_import(batch.id)
    db.session.refresh(batch)
    return batch
