"""Staff pages for cases: the searchable list, opening, working and paying a case."""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from portal import exports, jobs, uow
from portal.accounts import Role, User
from portal.audit import services as audit
from portal.cases import canned, customer_side, evidence, offers, rules, search, services, tasks
from portal.cases.forms import CaseForm, NoteForm, PaymentForm, StepForm
from portal.cases.models import (
    CLOSED_STATUSES,
    KINDS,
    LABELS,
    OPEN_STATUSES,
    CannedReply,
    Case,
    CaseStatus,
    ReplyStatus,
)
from portal.cases.settings import (
    DEFAULT_THRESHOLDS,
    InvalidSettings,
    save_settings,
    sla_hours,
    threshold,
)
from portal.customers import lookup, payout
from portal.customers.models import Customer
from portal.errors import RuleViolation
from portal.events.models import Event
from portal.extensions import db
from portal.placeholders import PlaceholderError
from portal.security import STAFF, access
from portal.signoffs import services as signoffs
from portal.web import database_int, database_ints, refuse, roll_back, wants_partial

bp = Blueprint("cases", __name__, url_prefix="/cases")
bp.add_app_template_global(ReplyStatus, "ReplyStatus")
WORKERS = (Role.AGENT, Role.ADMIN)
PAGE_SIZE = 50
STATUSES = (*OPEN_STATUSES, *CLOSED_STATUSES)


@bp.app_context_processor
def case_labels() -> dict[str, object]:
    return {"case_labels": LABELS}


def _assignees() -> list[User]:
    return list(db.session.scalars(select(User).where(
        User.active.is_(True), User.role.in_([Role.AGENT.value, Role.ADMIN.value]))
        .order_by(User.name)))


def _filter() -> search.CaseFilter:
    args = request.args
    return search.CaseFilter(
        q=(args.get("q") or "").strip()[:100],
        status=args.get("status") if args.get("status") in STATUSES else "",
        kind=args.get("kind") if args.get("kind") in KINDS else "",
        event_id=args.get("event", type=database_int),
        assignee_id=args.get("assignee", type=database_int),
        overdue=args.get("overdue") == "1",
        sort=args.get("sort") if args.get("sort") in search.SORTS else "newest",
    )


@bp.route("/")
@access(STAFF)
def index() -> ResponseReturnValue:
    flt = _filter()
    after, before = request.args.get("after", "")[:200], request.args.get("before", "")[:200]
    exact = request.args.get("count") == "exact"
    page = flt.page(after=after, before=before, size=PAGE_SIZE,
                    options=(joinedload(Case.customer), joinedload(Case.assignee)))
    count = flt.count(current_app.config["CASE_COUNT_THRESHOLD"], exact=exact)
    # What a link keeps: the filters (and an asked-for exact count), not the cursor.
    args = {k: v for k, v in request.args.items()
            if k not in ("page", "after", "before") and v}
    cursor = {"after": after} if after else {"before": before} if before else {}
    exact_args = {**args, **cursor, "count": "exact"}  # this page, counted exactly
    context = {"page": page, "count": count, "flt": flt, "args": args, "exact_args": exact_args,
               "assignees": _assignees()}
    if wants_partial("case-results"):
        return render_template("cases/_results.html", partial=True, **context)
    events = db.session.scalars(select(Event).order_by(Event.id.desc())).all()
    return render_template("cases/index.html", events=events, statuses=STATUSES, **context)


@bp.route("/export.csv")
@access(STAFF)
def export() -> ResponseReturnValue:
    return exports.response("cases.csv", search.export_csv(_filter()))


@bp.route("/bulk", methods=["POST"])
@access(*WORKERS)
def bulk() -> ResponseReturnValue:
    ids = database_ints(request.form.getlist("case_ids"))[:500]
    action = request.form.get("bulk_action")
    results: list[services.ItemResult] = []
    error = None
    if not ids:
        error = _("Select at least one case.")
    else:
        try:
            if action == "assign":
                assignee = request.form.get("assignee", type=database_int) or 0
                results = services.bulk_assign(ids, assignee, actor=current_user)
            elif action == "close":
                results = services.bulk_close(ids, actor=current_user)
            else:
                error = _("Choose what to do with the selected cases.")
        except RuleViolation as err:
            uow.rollback()
            error = err.message
    return render_template("cases/_bulk_result.html", results=results, error=error)


@bp.route("/new")
@access(*WORKERS)
def pick_customer() -> ResponseReturnValue:
    """A new case starts from its customer: find them by name, e-mail or ref, across events."""
    q = (request.args.get("q") or "").strip()[:100]
    context = {"q": q, "customers": lookup.find_customers(q), "min_query": lookup.MIN_QUERY}
    if wants_partial("customer-picks"):
        return render_template("cases/_customer_picks.html", **context)
    return render_template("cases/pick_customer.html", **context)


@bp.route("/new/<int:customer_id>", methods=["GET", "POST"])
@access(*WORKERS)
def create(customer_id: int) -> ResponseReturnValue:
    customer = db.get_or_404(Customer, customer_id)
    form = CaseForm()
    form.assignee_id.choices = [("", _("Unassigned"))] + [(str(u.id), u.name)
                                                          for u in _assignees()]
    if request.method == "GET":
        form.assignee_id.data = str(current_user.id)
    failed = False
    if form.validate_on_submit():
        try:
            case = services.open_case(customer, _input(form), actor=current_user)
        except services.DuplicateCase as err:
            roll_back(err)
            link = url_for("cases.detail", case_id=err.existing_id)
            form.order_ref.errors = [*form.order_ref.errors, Markup(
                '{} <a href="{}">{}</a>').format(err.message, link, _("Open it"))]
            failed = True
        except RuleViolation as err:
            refuse(err, form)
            failed = True
        else:
            flash(_("Case %(ref)s opened.", ref=case.ref), "success")
            return redirect(url_for("cases.detail", case_id=case.id))
    return render_template("cases/form.html", form=form, customer=customer, case=None), (
        422 if form.errors or failed else 200)


def _input(form: CaseForm) -> services.CaseInput:
    assignee = form.assignee_id.data
    return services.CaseInput(
        kind=form.kind.data, order_ref=form.order_ref.data or "", amount=form.amount.data or "",
        currency=form.currency.data or "CNY", reason=form.reason.data,
        description=form.description.data or "",
        assignee_id=int(assignee) if assignee and assignee.isdigit() else None)


def _version(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


def _detail(case: Case, status: int = 200, **forms: object) -> ResponseReturnValue:
    context = {
        "case": case, "steps": rules.steps(case, current_user),
        "waits_for_other_agent": rules.waits_for_other_agent(case, current_user),
        "step_form": forms.get("step_form") or StepForm(),
        "payment_form": forms.get("payment_form") or PaymentForm(),
        "note_form": forms.get("note_form") or NoteForm(),
        "canned_replies": canned.offered(),
        "signoff": signoffs.latest(services.SUBJECT, case.id),
        "threshold": threshold(case.currency),
        "history": audit.history("case", case.id),
        "offer": offers.offer_state(case),
        "payout": payout.view_for(case.customer),
        "evidence": evidence.for_case(case), "evidence_room": evidence.room_left(case),
        "evidence_error": forms.get("evidence_error"),
        "conversation": customer_side.conversation(case),
    }
    return render_template("cases/detail.html", **context), status


@bp.route("/<int:case_id>")
@access(STAFF)
def detail(case_id: int) -> ResponseReturnValue:
    return _detail(db.get_or_404(Case, case_id))


@bp.route("/<int:case_id>/edit", methods=["GET", "POST"])
@access(*WORKERS, when=rules.editable)
def edit(case_id: int) -> ResponseReturnValue:
    case = db.get_or_404(Case, case_id)
    # The case fills the form only when it is shown: a POST is read from what was sent (a
    # field left out must not fall back to the case's Decimal amount, which fails Length).
    form = CaseForm(obj=None if request.method == "POST" else case)
    form.assignee_id.choices = [("", _("Unassigned"))] + [(str(u.id), u.name)
                                                          for u in _assignees()]
    if request.method == "GET":
        form.assignee_id.data = str(case.assignee_id or "")
        form.amount.data = str(case.amount)
        form.lock_version.data = str(case.lock_version)
    failed = False
    if form.validate_on_submit():
        try:
            changed = services.update_case(case, _input(form),
                                           expected_version=_version(form.lock_version.data),
                                           actor=current_user)
        except RuleViolation as err:
            refuse(err, form)
            failed = True
        else:
            flash(_("Case %(ref)s saved.", ref=case.ref) if changed
                  else _("Case %(ref)s: nothing changed.", ref=case.ref), "success")
            return redirect(url_for("cases.detail", case_id=case.id))
    return render_template("cases/form.html", form=form, customer=case.customer, case=case), (
        422 if form.errors or failed else 200)


@bp.route("/<int:case_id>/step", methods=["POST"])
@access(STAFF, when=rules.may_step)
def step(case_id: int) -> ResponseReturnValue:
    """Every button of the flow posts here with its action; the services decide."""
    case = db.get_or_404(Case, case_id)
    form = StepForm()
    if not form.validate_on_submit():
        abort(400)
    expected = _version(form.lock_version.data)
    action = form.action.data
    try:
        if action in ("propose", "propose_signoff"):
            services.propose(case, actor=current_user, expected_version=expected)
        elif action == "approve":
            services.approve(case, actor=current_user, expected_version=expected)
        else:
            services.change_status(case, action, comment=form.comment.data or "",
                                   actor=current_user, expected_version=expected)
    except RuleViolation as err:
        uow.rollback()
        case = db.get_or_404(Case, case_id)
        if err.field == "comment":
            form.comment.errors = [*form.comment.errors, err.message]
            return _detail(case, 422, step_form=form)
        flash(err.message, "error")
        return redirect(url_for("cases.detail", case_id=case_id))
    flash(_step_done(case), "success")
    return redirect(url_for("cases.detail", case_id=case_id))


def _step_done(case: Case) -> str:
    """What the step did, said with the case's ref and where it now stands."""
    if case.status == CaseStatus.AWAITING_SIGNOFF:
        return _("Case %(ref)s proposed to legal for sign-off.", ref=case.ref)
    if case.status == CaseStatus.PROPOSED:
        return _("Case %(ref)s proposed; another agent approves it.", ref=case.ref)
    return _("Case %(ref)s is now “%(status)s”.", ref=case.ref,
             status=LABELS.get(case.status, case.status))


@bp.route("/<int:case_id>/pay", methods=["POST"])
@access(*WORKERS, when=rules.payable)
def pay(case_id: int) -> ResponseReturnValue:
    case = db.get_or_404(Case, case_id)
    form = PaymentForm()
    if form.validate_on_submit():
        try:
            services.record_payment(case, amount=form.amount.data, payout_ref=form.payout_ref.data,
                                    actor=current_user)
        except RuleViolation as err:
            refuse(err, form)
        else:
            flash(_("Payment of %(amount)s %(currency)s recorded for case %(ref)s.",
                    amount=case.approved_amount, currency=case.currency, ref=case.ref),
                  "success")
            return redirect(url_for("cases.detail", case_id=case_id))
    return _detail(db.get_or_404(Case, case_id), 422, payment_form=form)


@bp.route("/<int:case_id>/notes", methods=["POST"])
@access(*WORKERS)
def add_note(case_id: int) -> ResponseReturnValue:
    case = db.get_or_404(Case, case_id)
    form = NoteForm()
    if form.validate_on_submit():
        try:
            if form.kind.data == "reply":
                note = services.add_reply(case, form.body.data, actor=current_user)
                jobs.enqueue_after_commit(
                    tasks.queue_reply, note.id,
                    unreachable=_("The job queue cannot be reached. The reply is saved and will "
                                  "be sent when the queue is back."))
            else:
                services.add_note(case, form.body.data, actor=current_user)
        except RuleViolation as err:
            refuse(err, form)
        else:
            flash(_("Reply to the customer of case %(ref)s saved; it is being e-mailed.",
                    ref=case.ref) if form.kind.data == "reply"
                  else _("Internal note added to case %(ref)s.", ref=case.ref), "success")
            return redirect(url_for("cases.detail", case_id=case_id) + (
                "#conversation" if form.kind.data == "reply" else "#notes"))
    return _detail(db.get_or_404(Case, case_id), 422, note_form=form)


@bp.route("/<int:case_id>/reply-text")
@access(*WORKERS)
def reply_text(case_id: int) -> ResponseReturnValue:
    """The reply box filled in with the chosen canned reply, in the customer's language."""
    case = db.get_or_404(Case, case_id)
    form = NoteForm(formdata=None)
    reply = db.session.get(CannedReply, request.args.get("canned", 0, type=database_int) or 0)
    if reply is not None and not reply.retired:
        form.kind.data = "reply"
        try:
            form.body.data = canned.fill(reply, case)
        except PlaceholderError as err:
            form.body.errors = [err.message or ""]
    return render_template("cases/_reply_body.html", note_form=form, case=case)


@bp.route("/settings", methods=["GET", "POST"])
@access(Role.ADMIN)
def settings() -> ResponseReturnValue:
    """SLA hours per event severity and the sign-off threshold per currency."""
    from portal.cases.models import SignoffThreshold
    from portal.events.models import SEVERITIES

    def current_thresholds() -> dict[str, object]:
        stored = {t.currency: t.amount for t in db.session.scalars(select(SignoffThreshold))}
        return {**DEFAULT_THRESHOLDS, **stored}

    errors: dict[str, str] = {}
    if request.method == "POST":
        form = request.form
        try:
            save_settings(
                {s: form.get(f"sla_{s}", "") for s in SEVERITIES},
                {c: form.get(f"threshold_{c}", "") for c in current_thresholds()},
                new_currency=form.get("new_currency", ""),
                new_amount=form.get("new_amount", ""), actor=current_user)
        except InvalidSettings as err:
            uow.rollback()
            errors = err.errors
        else:
            flash(_("Case settings saved: SLA hours and sign-off thresholds."), "success")
            return redirect(url_for("cases.settings"))
    thresholds = current_thresholds()
    return render_template(
        "cases/settings.html", errors=errors, thresholds=thresholds, form=request.form,
        sla={s: sla_hours(s) for s in SEVERITIES},
    ), 422 if errors else 200
