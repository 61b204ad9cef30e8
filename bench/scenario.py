"""What several benchmarks start from: an agent and a legal reviewer, a sev1 incident with a
notice legal approved, and customers inserted in bulk (two in three read Chinese). Call inside
an application context; nothing is committed here."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert

from portal.accounts import Role
from portal.auth import services as auth
from portal.customers.models import Customer
from portal.events import services as events
from portal.extensions import db
from portal.models import utcnow
from portal.notices import services as notices
from portal.signoffs import services as signoffs


def approved_notice(content: dict[str, dict[str, str]]) -> tuple[Any, Any, Any]:
    """(agent, event, notice) with ``content`` signed off by legal."""
    agent, _ = auth.create_user("agent@bench.example", "Agent", Role.AGENT, "x" * 16,
                                must_change_password=False)
    legal, _ = auth.create_user("legal@bench.example", "Legal", Role.LEGAL, "x" * 16,
                                must_change_password=False)
    event = events.create_event(title="CRM 系统故障", kind="incident", severity="sev1",
                                cause="system")
    notice = notices.create_notice(event, audience="public", actor=agent, content=content)
    request = notices.request_signoff(notice, actor=agent)
    signoffs.decide(request.id, "approved", "", actor=legal)
    return agent, event, notice


def add_customers(event_id: int, count: int) -> None:
    """``count`` customers of the event in one statement."""
    now = utcnow()
    db.session.execute(insert(Customer), [
        {"event_id": event_id, "external_ref": f"C{i:06d}", "name": f"客户{i}",
         "company": "", "email": f"c{i}@example.com", "phone": "",
         "locale": "en" if i % 3 == 0 else "zh_CN", "tags": [], "created_at": now,
         "updated_at": now} for i in range(count)])
