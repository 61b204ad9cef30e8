"""Admin: the RQ queues (depth, running, failed jobs with their error) and retrying a failed
job."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from redis.exceptions import RedisError

from portal.accounts import Role
from portal.errors import RuleViolation
from portal.forms import ConfirmForm
from portal.jobqueues import services
from portal.security import access
from portal.web import refuse, wants_partial

bp = Blueprint("jobqueues", __name__, url_prefix="/admin/jobs")


@bp.route("/")
@access(Role.ADMIN)
def index() -> ResponseReturnValue:
    try:
        queues, unreachable = services.queues(), False
    except (RedisError, OSError):
        queues, unreachable = [], True
    template = "jobqueues/_queues.html" if wants_partial("job-queues") else "jobqueues/index.html"
    return render_template(template, queues=queues, unreachable=unreachable,
                           confirm=ConfirmForm())


@bp.route("/<queue>/<job_id>/retry", methods=["POST"])
@access(Role.ADMIN)
def retry(queue: str, job_id: str) -> ResponseReturnValue:
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        services.retry(queue, job_id)
    except RuleViolation as err:
        refuse(err)
    else:
        flash(_("Job %(job)s queued again on queue %(queue)s.", job=job_id, queue=queue),
              "success")
    return redirect(url_for("jobqueues.index"))
