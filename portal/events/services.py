"""Rules for events: valid kind, severity, cause and a status that fits the kind."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from flask_babel import gettext as _
from sqlalchemy import func, select

from portal import uow
from portal.accounts import User
from portal.audit import services as audit
from portal.errors import RuleViolation
from portal.events import signals
from portal.events.models import (
    CAUSES,
    DEPARTMENTS,
    SEVERITIES,
    STAKEHOLDER_KINDS,
    STATUSES,
    TARGET_METRICS,
    ChecklistTemplateItem,
    Event,
    EventKind,
    EventStatus,
    EventTask,
    ResponseTarget,
    Stakeholder,
    TimelineEntry,
)
from portal.extensions import db
from portal.i18n import N_, term
from portal.models import text_digest, utcnow

# The event's titles besides the internal one: per language for notices, public ones.
TITLE_FIELDS = ("title_zh", "title_en", "public_title_zh", "public_title_en")
MAX_TITLE = 200


def _clean_titles(titles: Mapping[str, str | None] | None) -> dict[str, str | None]:
    """Each title trimmed, empty ones as None; each at most 200 characters."""
    cleaned: dict[str, str | None] = {}
    for name in TITLE_FIELDS:
        value = ((titles or {}).get(name) or "").strip()
        if len(value) > MAX_TITLE:
            raise RuleViolation(_("At most %(n)d characters.", n=MAX_TITLE), field=name)
        cleaned[name] = value or None
    return cleaned


def create_event(
    *, title: str, kind: str, severity: str, cause: str, summary: str = "",
    actor: User | None = None, with_checklist: bool = True,
    titles: Mapping[str, str | None] | None = None, accepts_claims: bool = False,
    self_service: bool = True,
) -> Event:
    """Open an event; its checklist starts from the template of its kind unless told not to.
    ``titles`` holds the optional titles of ``TITLE_FIELDS``; ``accepts_claims`` lets its
    public notices take claims."""
    title = title.strip()
    if not title:
        raise RuleViolation(_("A title is required."), field="title")
    more_titles = _clean_titles(titles)
    try:
        event_kind = EventKind(kind)
    except ValueError:
        raise RuleViolation(_("Unknown kind of event."), field="kind") from None
    if severity not in SEVERITIES:
        raise RuleViolation(_("Unknown severity."), field="severity")
    if cause not in CAUSES:
        raise RuleViolation(_("Unknown cause."), field="cause")
    event = Event(
        title=title, kind=event_kind.value, severity=severity, cause=cause,
        status=STATUSES[event_kind][0], summary=summary.strip(),
        created_by_id=actor.id if actor else None, accepts_claims=bool(accepts_claims),
        self_service=self_service, **more_titles,
    )
    db.session.add(event)
    db.session.flush()
    tasks = _add_checklist(event) if with_checklist else 0
    audit.record("event.create", "event", event.id,
                 N_("Event “%(title)s” opened with a checklist (tasks: %(tasks)d)",
                    title=title, tasks=tasks) if tasks
                 else N_("Event “%(title)s” opened", title=title),
                 after=event.audit_state(), actor=actor)
    return event


def update_event(event: Event, *, title: str, severity: str, cause: str, summary: str,
                 actor: User, titles: Mapping[str, str | None] | None = None,
                 accepts_claims: bool | None = None, self_service: bool | None = None) -> bool:
    """Change titles, severity, cause, summary, whether it accepts claims or whether its notice
    pages offer "Check my case" (None: kept); returns whether anything changed. A change the
    public pages show empties their cache after the commit (``signals.public_settings_changed``)."""
    title = title.strip()
    if not title:
        raise RuleViolation(_("A title is required."), field="title")
    more_titles = _clean_titles(titles)
    if severity not in SEVERITIES:
        raise RuleViolation(_("Unknown severity."), field="severity")
    if cause not in CAUSES:
        raise RuleViolation(_("Unknown cause."), field="cause")
    before = event.audit_state()
    event.title, event.severity, event.cause = title, severity, cause
    for name, value in more_titles.items():
        setattr(event, name, value)
    event.summary = summary.strip()
    if accepts_claims is not None:
        event.accepts_claims = bool(accepts_claims)
    if self_service is not None:
        event.self_service = self_service
    if event.audit_state() == before:
        return False
    # What the public pages show of the event (severity: the urgent badge and the list order).
    public = ("public_title_zh", "public_title_en", "severity", "self_service", "accepts_claims")
    if any(before.get(name) != event.audit_state()[name] for name in public):
        event.public_changed_at = utcnow()
        uow.after_commit(lambda: signals.public_settings_changed.send(event))
    audit.record("event.update", "event", event.id, N_("Event “%(title)s” updated", title=title),
                 before=before, after=event.audit_state(), actor=actor)
    return True


def next_statuses(event: Event) -> list[str]:
    """The phases an event may move to: one step forward or one step back."""
    order = STATUSES[EventKind(event.kind)]
    i = order.index(event.status)
    return [order[j] for j in (i + 1, i - 1) if 0 <= j < len(order)]


def may_change_status(_user: User, event: Event) -> bool:
    """The event has a phase to move to (the status form has choices)."""
    return bool(next_statuses(event))


def change_status(event: Event, status: str, *, actor: User) -> None:
    if status not in next_statuses(event):
        raise RuleViolation(_("An event moves one phase at a time."), field="status")
    before = event.audit_state()
    event.status = status
    event.closed_at = utcnow() if status == EventStatus.CLOSED else None
    audit.record("event.status", "event", event.id,
                 N_("Event “%(title)s” moved from %(before)s to %(after)s", title=event.title,
                    before=term("event", before["status"]), after=term("event", status)),
                 before=before, after=event.audit_state(), actor=actor)



# ---------------------------------------------------------------------------- command centre

# (department, title, hours after opening) — the starting checklists DESIGN.md describes; an
# admin edits them on the settings page (a kind left with no items gets these back).
DEFAULT_CHECKLISTS: dict[str, list[tuple[str, str, int]]] = {
    "incident": [
        ("tech", "首次响应：确认影响范围 · First response: confirm the impact", 1),
        ("customer_service", "首次报告：通报管理层与客户 · First report to management and "
                             "customers", 1),
        ("operations", "暂停受影响的服务 · Suspend the affected service", 2),
        ("tech", "分级定损：范围、受影响客户、级别 · Triage: scope, customers, severity", 4),
        ("tech", "调查原因 · Investigate the cause", 24),
        ("tech", "设计修复方案 · Design the fix", 48),
        ("operations", "执行修复 · Execute the fix", 72),
        ("tech", "验证并发布 · Verify and release", 96),
        ("customer_service", "通知客户处理结果 · Notify customers", 96),
        ("product", "复盘 · Review (post-mortem)", 168),
    ],
    "shutdown": [
        ("product", "评估关停影响 · Assess the impact", 72),
        ("product", "制定时间表 · Set the timeline", 120),
        ("customer_service", "通知用户 · Notify users", 168),
        ("customer_service", "处理未完成订单 · Handle open orders", 336),
        ("finance", "清理库存与结算 · Clear inventory and settle", 504),
        ("tech", "备份数据 · Back up data", 504),
        ("legal", "制定数据销毁计划 · Plan data destruction", 672),
        ("legal", "通知合作伙伴 · Notify partners", 336),
        ("operations", "人员与设备重新分配 · Reallocate people and equipment", 720),
        ("product", "复盘 · Review (post-mortem)", 840),
    ],
}
# Minutes from the event opening; a severity without a row here has no such target.
DEFAULT_TARGETS = {
    ("sev1", "first_notice"): 30, ("sev2", "first_notice"): 60,
    ("sev3", "first_notice"): 240, ("sev4", "first_notice"): 1440,
    ("sev1", "first_mailing"): 120, ("sev2", "first_mailing"): 240,
    ("sev3", "first_mailing"): 1440,
}


def _stored_template(kind: str) -> list[ChecklistTemplateItem]:
    return list(db.session.scalars(select(ChecklistTemplateItem).where(
        ChecklistTemplateItem.kind == kind).order_by(ChecklistTemplateItem.position,
                                                     ChecklistTemplateItem.id)))


def _default_template(kind: str) -> list[ChecklistTemplateItem]:
    return [ChecklistTemplateItem(kind=kind, position=i, department=dept, title=title,
                                  due_hours=hours)
            for i, (dept, title, hours) in enumerate(DEFAULT_CHECKLISTS[kind])]


def shown_checklist_template(kind: str) -> list[ChecklistTemplateItem]:
    """The kind's template items to show; its defaults, not stored (showing them writes
    nothing), while it has none."""
    return _stored_template(kind) or _default_template(kind)


def checklist_template(kind: str) -> list[ChecklistTemplateItem]:
    """The kind's template items, its defaults stored first if it has none (to change it or
    to start an event's checklist)."""
    items = _stored_template(kind)
    if not items:
        items = _default_template(kind)
        db.session.add_all(items)
        db.session.flush()
    return items


def stored_template_item(kind: str, position: int) -> ChecklistTemplateItem | None:
    """The kind's item at ``position``, its defaults stored first (to change one of them)."""
    if kind not in DEFAULT_CHECKLISTS:
        return None
    return next((i for i in checklist_template(kind) if i.position == position), None)


def _add_checklist(event: Event) -> int:
    items = checklist_template(event.kind)
    for item in items:
        db.session.add(EventTask(event_id=event.id, position=item.position,
                                 department=item.department, title=item.title,
                                 due_at=event.created_at + timedelta(hours=item.due_hours)))
    return len(items)


def _clean_department(department: str) -> str:
    if department not in DEPARTMENTS:
        raise RuleViolation(_("Choose a department."), field="department")
    return department


def add_task(event: Event, *, department: str, title: str, owner_id: int | None,
             due_at: datetime | None, actor: User) -> EventTask:
    title = title.strip()
    if not title:
        raise RuleViolation(_("Say what needs doing."), field="title")
    if owner_id is not None and db.session.get(User, owner_id) is None:
        raise RuleViolation(_("Choose a member of staff."), field="owner_id")
    position = db.session.scalar(select(func.coalesce(func.max(EventTask.position), -1)).where(
        EventTask.event_id == event.id)) + 1
    task = EventTask(event_id=event.id, position=position,
                     department=_clean_department(department), title=title[:200],
                     owner_id=owner_id, due_at=due_at)
    db.session.add(task)
    db.session.flush()
    audit.record("event.task.add", "event", event.id,
                 N_("Task added: %(task)s", task=task.title),
                 after=task.audit_state(), actor=actor)
    return task


def assign_task(task: EventTask, *, owner_id: int | None, due_at: datetime | None,
                actor: User) -> None:
    if owner_id is not None and db.session.get(User, owner_id) is None:
        raise RuleViolation(_("Choose a member of staff."), field="owner_id")
    before = task.audit_state()
    task.owner_id, task.due_at = owner_id, due_at
    db.session.flush()
    if task.audit_state() == before:
        return
    audit.record("event.task.assign", "event", task.event_id,
                 N_("Task changed: %(task)s", task=task.title),
                 before=before, after=task.audit_state(), actor=actor)


def set_task_done(task: EventTask, done: bool, *, actor: User) -> None:
    if (task.done_at is not None) == done:
        return
    before = task.audit_state()
    task.done_at, task.done_by_id = (utcnow(), actor.id) if done else (None, None)
    audit.record("event.task.done" if done else "event.task.reopen", "event", task.event_id,
                 N_("Task done: %(task)s", task=task.title) if done
                 else N_("Task reopened: %(task)s", task=task.title),
                 before=before, after=task.audit_state(), actor=actor)


def add_timeline_entry(event: Event, *, occurred_at: datetime | None, text: str,
                       actor: User) -> TimelineEntry:
    text = text.strip()
    if not text:
        raise RuleViolation(_("Write what happened."), field="text")
    now = utcnow()
    when = occurred_at or now
    if when > now + timedelta(minutes=5):
        raise RuleViolation(_("The timeline records what has happened, not plans."),
                            field="occurred_at")
    entry = TimelineEntry(event_id=event.id, occurred_at=when, text=text[:5000],
                          author_id=actor.id, created_at=now)
    db.session.add(entry)
    db.session.flush()
    # The text's hash, not the text: an entry may name a customer, and erasure scrubs the
    # timeline but can never change the append-only trail.
    audit.record("event.timeline", "event", event.id,
                 N_("Timeline entry #%(id)d added", id=entry.id),
                 after={"entry_id": entry.id, "occurred_at": when.isoformat(),
                        "text_sha256": text_digest(entry.text)},
                 actor=actor)
    return entry


def add_stakeholder(event: Event, *, kind: str, name: str, contact: str,
                    actor: User) -> Stakeholder:
    if kind not in STAKEHOLDER_KINDS:
        raise RuleViolation(_("Choose the kind of stakeholder."), field="kind")
    name = name.strip()
    if not name:
        raise RuleViolation(_("A name is required."), field="name")
    stakeholder = Stakeholder(event_id=event.id, kind=kind, name=name[:200],
                              contact=contact.strip()[:300])
    db.session.add(stakeholder)
    db.session.flush()
    audit.record("event.stakeholder.add", "event", event.id,
                 N_("Stakeholder added: %(name)s", name=name),
                 after=stakeholder.audit_state(), actor=actor)
    return stakeholder


def mark_informed(stakeholder: Stakeholder, *, actor: User) -> None:
    if stakeholder.informed_at is not None:
        raise RuleViolation(_("Already recorded as informed."))
    stakeholder.informed_at, stakeholder.informed_by_id = utcnow(), actor.id
    audit.record("event.stakeholder.informed", "event", stakeholder.event_id,
                 N_("Stakeholder informed: %(name)s", name=stakeholder.name),
                 after=stakeholder.audit_state(), actor=actor)


# ---------------------------------------------------------------------------- targets

def target_minutes() -> dict[tuple[str, str], int]:
    """The admin's targets where set, the defaults elsewhere."""
    found = dict(DEFAULT_TARGETS)
    for row in db.session.scalars(select(ResponseTarget)):
        if row.minutes > 0:
            found[(row.severity, row.metric)] = row.minutes
        else:
            found.pop((row.severity, row.metric), None)
    return found


def set_targets(values: dict[tuple[str, str], int | None], *, actor: User) -> int:
    """Set (or, with None or 0, switch off) targets, all or none, in one transaction;
    returns how many changed."""
    current = target_minutes()
    changed = 0
    for (severity, metric), minutes in values.items():
        if severity not in SEVERITIES or metric not in TARGET_METRICS:
            raise RuleViolation(_("Unknown target."))
        if minutes is not None and not 0 <= minutes <= 60 * 24 * 30:
            raise RuleViolation(_("Between 0 and 43200 minutes (30 days)."), field="minutes")
        before = current.get((severity, metric))
        if (minutes or None) == before:
            continue
        row = db.session.scalar(select(ResponseTarget).where(
            ResponseTarget.severity == severity, ResponseTarget.metric == metric))
        if row is None:
            row = ResponseTarget(severity=severity, metric=metric)
            db.session.add(row)
        row.minutes = minutes or 0
        audit.record("settings.target", audit.SETTING, 0,
                     N_("Response target %(severity)s, %(metric)s: %(before)s → %(after)s min",
                        severity=term("event", severity), metric=term("target_metric", metric),
                        before=before or term("value", "none"),
                        after=minutes or term("value", "none")),
                     before={"minutes": before}, after={"minutes": minutes or None},
                     actor=actor)
        changed += 1
    return changed


def add_template_item(*, kind: str, department: str, title: str, due_hours: int,
                      actor: User) -> ChecklistTemplateItem:
    title = title.strip()
    if kind not in STATUSES or not title:
        raise RuleViolation(_("Say what needs doing."), field="title")
    items = checklist_template(kind)
    item = ChecklistTemplateItem(kind=kind, position=max((i.position for i in items),
                                                         default=-1) + 1,
                                 department=_clean_department(department), title=title[:200],
                                 due_hours=due_hours)
    db.session.add(item)
    db.session.flush()
    audit.record("settings.checklist.add", audit.SETTING, 0,
                 N_("Checklist template (%(kind)s): added %(task)s",
                    kind=term("event", kind), task=item.title),
                 after=item.audit_state(), actor=actor)
    return item


def delete_template_item(item: ChecklistTemplateItem, *, actor: User) -> None:
    """Remove a template task (events already opened keep theirs)."""
    audit.record("settings.checklist.remove", audit.SETTING, 0,
                 N_("Checklist template (%(kind)s): removed %(task)s",
                    kind=term("event", item.kind), task=item.title),

                 before=item.audit_state(), actor=actor)
    db.session.delete(item)
