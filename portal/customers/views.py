"""Staff pages for an event's affected customers and their CSV imports."""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, or_, select

from portal import exports, jobs, uow
from portal.accounts import Role
from portal.audit import services as audit
from portal.customers import links, payout, people, services, tasks
from portal.customers.forms import CustomerForm, ImportForm
from portal.customers.models import IMPORT_LABELS, Customer, ImportBatch, ImportStatus
from portal.errors import RuleViolation
from portal.events.models import Event
from portal.extensions import db
from portal.forms import ConfirmForm
from portal.security import STAFF, access
from portal.web import database_int, refuse, wants_partial

bp = Blueprint("customers", __name__, url_prefix="/customers")
bp.add_app_template_global(ImportStatus, "ImportStatus")
EDITORS = (Role.AGENT, Role.ADMIN)
PAGE_SIZE = 50


@bp.route("/event/<int:event_id>")
@access(STAFF)
def index(event_id: int) -> ResponseReturnValue:
    event = db.get_or_404(Event, event_id)
    q = (request.args.get("q") or "").strip()
    stmt = select(Customer).where(Customer.event_id == event.id)
    if q:
        like = f"%{q}%"
        stmt = stmt.where(or_(Customer.external_ref.ilike(like), Customer.name.ilike(like),
                              Customer.email.ilike(like), Customer.company.ilike(like)))
    page = db.paginate(stmt.order_by(Customer.name, Customer.id),
                       page=request.args.get("page", 1, type=database_int), per_page=PAGE_SIZE,
                       error_out=False)
    args = {"q": q} if q else {}
    context = {"event": event, "page": page, "q": q, "args": args}
    if wants_partial("customer-results"):
        return render_template("customers/_results.html", **context)
    imports = db.session.scalars(select(ImportBatch).where(ImportBatch.event_id == event.id)
                                 .order_by(ImportBatch.id.desc()).limit(5)).all()
    total = db.session.scalar(select(func.count(Customer.id)).where(
        Customer.event_id == event.id))
    return render_template("customers/index.html", imports=imports, total=total,
                           import_labels=IMPORT_LABELS, **context)


@bp.route("/event/<int:event_id>/new", methods=["GET", "POST"])
@access(*EDITORS)
def create(event_id: int) -> ResponseReturnValue:
    event = db.get_or_404(Event, event_id)
    form = CustomerForm()
    failed = False
    if form.validate_on_submit():
        try:
            customer = services.create_customer(event, form.raw(), actor=current_user)
        except RuleViolation as err:
            refuse(err, form)
            failed = True
        else:
            flash(_("Customer %(ref)s added.", ref=customer.external_ref), "success")
            return redirect(url_for("customers.detail", customer_id=customer.id))
    return render_template("customers/form.html", form=form, event=event, customer=None), (
        422 if form.errors or failed else 200)


@bp.route("/<int:customer_id>")
@access(STAFF)
def detail(customer_id: int) -> ResponseReturnValue:
    customer = db.get_or_404(Customer, customer_id)
    rows = people.same_person(customer)
    return render_template("customers/detail.html", customer=customer, cases=customer.cases,
                           same_person=rows[1:], timeline=people.timeline(rows),
                           events={c.id: c.event for c in rows},
                           payout=payout.view_for(customer),
                           history=audit.history("customer", customer.id),
                           customer_links=links.active_links(customer), confirm=ConfirmForm(),
                           link_kinds=links.KIND_LABELS)


@bp.route("/links/<int:link_id>/revoke", methods=["POST"])
@access(*EDITORS)
def revoke_link(link_id: int) -> ResponseReturnValue:
    """Revoke one of a customer's links to their page (their session with it ends too)."""
    link = db.get_or_404(links.CustomerLink, link_id)
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400)
    if links.revoke(link, actor=current_user):
        flash(_("Link #%(id)d to the customer page revoked: it no longer opens the page.",
                id=link.id), "success")
    else:
        flash(_("Link #%(id)d had already stopped working; nothing changed.", id=link.id),
              "info")
    return redirect(url_for("customers.detail", customer_id=link.customer_id,
                            _anchor="customer-links"))


@bp.route("/link-settings", methods=["GET", "POST"])
@access(Role.ADMIN)
def link_settings() -> ResponseReturnValue:
    """How long a new personal link to the customer page stays valid."""
    error = None
    value = request.form.get("link_lifetime_days", "") if request.method == "POST" \
        else str(links.link_lifetime_days())
    if request.method == "POST":
        try:
            changed = links.set_link_lifetime(value, actor=current_user)
        except RuleViolation as err:
            uow.rollback()
            error = err.message
        else:
            flash(_("Customer link settings saved: new links are valid for %(days)d days.",
                    days=links.link_lifetime_days()) if changed
                  else _("Customer link settings: nothing changed; new links stay valid "
                         "%(days)d days.", days=links.link_lifetime_days()), "success")
            return redirect(url_for("customers.link_settings"))
    return render_template("customers/link_settings.html", value=value, error=error,
                           default=links.DEFAULT_LIFETIME_DAYS,
                           maximum=links.MAX_LIFETIME_DAYS), 422 if error else 200


# The roles that pay (finance, and admins) see the bank account in full; everyone else on the
# staff sees it masked (the templates ask ``can`` for this).
@bp.route("/<int:customer_id>/payout")
@access(Role.FINANCE, Role.ADMIN)
def payout_details(customer_id: int) -> ResponseReturnValue:
    """The customer's payout details in full (the page includes the same partial)."""
    customer = db.get_or_404(Customer, customer_id)
    return render_template("customers/_payout_details.html", customer=customer,
                           payout=payout.view_for(customer))


@bp.route("/<int:customer_id>/edit", methods=["GET", "POST"])
@access(*EDITORS)
def edit(customer_id: int) -> ResponseReturnValue:
    customer = db.get_or_404(Customer, customer_id)
    form = CustomerForm(obj=customer)
    if request.method == "GET":
        form.tags.data = "; ".join(customer.tags or [])
    failed = False
    if form.validate_on_submit():
        try:
            changed = services.update_customer(customer, form.raw(), actor=current_user)
        except RuleViolation as err:
            refuse(err, form)
            failed = True
        else:
            flash(_("Customer %(ref)s saved.", ref=customer.external_ref) if changed
                  else _("Customer %(ref)s: nothing changed.", ref=customer.external_ref),
                  "success")
            return redirect(url_for("customers.detail", customer_id=customer.id))
    return render_template("customers/form.html", form=form, event=customer.event,
                           customer=customer), 422 if form.errors or failed else 200


@bp.route("/event/<int:event_id>/import", methods=["GET", "POST"])
@access(*EDITORS)
def upload(event_id: int) -> ResponseReturnValue:
    event = db.get_or_404(Event, event_id)
    form = ImportForm()
    if form.validate_on_submit():
        try:
            batch = services.start_import(event, form.file.data.stream,
                                          form.file.data.filename or "upload.csv",
                                          actor=current_user)
        except RuleViolation as err:
            form.file.errors = [*form.file.errors, err.message]
        else:
            jobs.enqueue_after_commit(
                tasks.queue_validation, batch.id,
                unreachable=_("The job queue cannot be reached. The file is saved and will be "
                              "checked when the queue is back."))
            return redirect(url_for("customers.import_status", batch_id=batch.id))
    return render_template("customers/upload.html", form=form, event=event), (
        422 if form.errors else 200)


@bp.route("/imports/<int:batch_id>")
@access(STAFF)
def import_status(batch_id: int) -> ResponseReturnValue:
    batch = db.get_or_404(ImportBatch, batch_id)
    if wants_partial():
        return render_template("customers/_import_status.html", batch=batch,
                               confirm=ConfirmForm())
    return render_template("customers/import.html", batch=batch, confirm=ConfirmForm(),
                           history=audit.history("customer_import", batch.id))


@bp.route("/imports/<int:batch_id>/confirm", methods=["POST"])
@access(*EDITORS)
def confirm_import(batch_id: int) -> ResponseReturnValue:
    batch = db.get_or_404(ImportBatch, batch_id)
    try:
        services.confirm_import(batch, actor=current_user)
    except RuleViolation as err:
        refuse(err)
    else:
        jobs.enqueue_after_commit(
            tasks.queue_import, batch.id,
            unreachable=_("The job queue cannot be reached. The import is saved and will run "
                          "when the queue is back."))
    return redirect(url_for("customers.import_status", batch_id=batch.id))


@bp.route("/imports/<int:batch_id>/discard", methods=["POST"])
@access(*EDITORS)
def discard_import(batch_id: int) -> ResponseReturnValue:
    batch = db.get_or_404(ImportBatch, batch_id)
    try:
        services.discard_import(batch, actor=current_user)
    except RuleViolation as err:
        refuse(err)
    else:
        flash(_("Import of %(file)s discarded: nothing was imported.", file=batch.filename),
              "success")
    return redirect(url_for("customers.import_status", batch_id=batch.id))


@bp.route("/imports/<int:batch_id>/rejected.csv")
@access(STAFF)
def rejected_rows(batch_id: int) -> ResponseReturnValue:
    batch = db.get_or_404(ImportBatch, batch_id)
    if not services.rejected_path(batch).exists():
        abort(404)
    return exports.response(f"rejected-rows-{batch.id}.csv", services.rejected_csv(batch))
