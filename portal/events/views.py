"""Staff pages listing events (creation and editing arrive with the notices work)."""

from __future__ import annotations

from flask import Blueprint, abort, render_template
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from portal.audit import services as audit
from portal.events.models import LABELS, Event
from portal.extensions import db
from portal.security import STAFF, access

bp = Blueprint("events", __name__, url_prefix="/events")


@bp.app_context_processor
def event_labels() -> dict[str, object]:
    return {"event_labels": LABELS}


@bp.route("/")
@access(STAFF)
def index() -> ResponseReturnValue:
    events = db.session.scalars(select(Event).order_by(Event.id.desc())).all()
    return render_template("events/index.html", events=events)


@bp.route("/<int:event_id>")
@access(STAFF)
def detail(event_id: int) -> ResponseReturnValue:
    event = db.session.get(Event, event_id)
    if event is None:
        abort(404)
    return render_template("events/detail.html", event=event,
                           history=audit.history("event", event.id))
