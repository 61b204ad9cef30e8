"""Every GET endpoint of ``app.url_map``, over a database holding one of everything, as every
role, in both languages, as a full page and as an htmx swap: no answer may be a 5xx.

URL arguments are filled from the data (every row, plus one id that does not exist). An
endpoint whose arguments cannot be filled must be listed in ``NOT_CRAWLED`` with the reason,
so a new endpoint is never skipped silently."""

from __future__ import annotations

import importlib
import inspect
import logging
import re
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from flask import Flask
from redis import Redis
from sqlalchemy import func, select, update
from wtforms.fields.core import UnboundField

from portal import create_app
from portal.accounts import Role, User
from portal.audit.models import AuditEntry, AuditVerification
from portal.cases import claims
from portal.cases.claim_models import Claim
from portal.cases.models import CannedReply, Case, Evidence
from portal.customers.models import Customer, ImportBatch
from portal.events.models import Event
from portal.extensions import db
from portal.i18n import LOCALE_COOKIE
from portal.letters.models import Letter, LetterRun
from portal.lifecycle.models import EventArchive, RetentionRun
from portal.mailings import unsubscribe
from portal.mailings.models import Mailing
from portal.notices.models import Notice, NoticePdf
from portal.payouts.models import PayoutBatch, PayoutFile, PayoutResult
from portal.postmortems.models import Postmortem, PostmortemPdf
from portal.programmes.models import EntitlementImport, Programme
from portal.signoffs.models import SignoffRequest
from portal.subscriptions import services as subscriptions
from portal.subscriptions.models import Subscription
from tests import crawl_data
from tests.conftest import empty_database, make_config
from tests.mail_helpers import start_server

PORTAL = Path(__file__).resolve().parent.parent / "portal"
ROLES: list[Role | None] = [None, Role.AGENT, Role.LEGAL, Role.ADMIN, Role.FINANCE]
LOCALES = {"en": "en-GB,en;q=0.9", "zh_CN": "zh-CN,zh;q=0.9"}
# Ids no row has: an ordinary one, and one beyond any database integer.
MISSING_IDS = ["999999", str(2**64)]
# Odd values for every query argument the portal reads.
ODD_QUERY_VALUES = ["x", "-1", str(2**64)]
# endpoint → why it cannot be crawled with GET (empty today: every argument can be filled).
NOT_CRAWLED: dict[str, str] = {}
# Endpoints whose 503 is an answer, not a fault: /readyz while no RQ worker beats (no worker
# runs during the crawl); tests/test_operations.py checks its 200 and 503.
UNAVAILABLE_IS_AN_ANSWER = {"ops.readyz"}


def _ids(model: Any, *kinds: Any) -> list[str]:
    """One row of each kind (the first row per distinct value of ``kinds``: a paid case, a
    rejected one ...), then an id that does not exist."""
    first = select(func.min(model.id))
    ids = db.session.scalars(first.group_by(*kinds) if kinds else first)
    return [*sorted(str(i) for i in ids), *MISSING_IDS]


def _static_files() -> list[str]:
    root = Path(__file__).resolve().parent.parent / "static"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _slugs() -> list[str]:
    ids = [int(i) for i in _ids(Notice, Notice.status, Notice.hidden) if i not in MISSING_IDS]
    return [*db.session.scalars(select(Notice.slug).where(Notice.id.in_(ids))), "no-such"]


def _tokens() -> list[str]:
    """A live customer's, an erased customer's, and one we never issued."""
    return [unsubscribe.unsubscribe_token(int(i))
            for i in _ids(Customer, Customer.erased_at.is_(None)) if i not in MISSING_IDS] + [
        "not-a-token"]


def _claim_tokens() -> list[str]:
    """The confirmation link of a claim of each status, and a forged one."""
    return [claims.confirmation_token(db.session.get(Claim, int(i)))
            for i in _ids(Claim, Claim.status) if i not in MISSING_IDS] + ["not-a-token"]


def _verification_codes() -> list[str]:
    """A published version's code, a mailing message's, one never issued, and one mistyped."""
    from portal.mailings.models import MailingRecipient
    from portal.notices.models import Publication

    issued = [db.session.scalar(select(func.min(Publication.verification_code))),
              db.session.scalar(select(func.min(MailingRecipient.verification_code))),
              db.session.scalar(select(func.min(Letter.verification_code)))]
    return [code for code in issued if code] + ["7K3QM-X9P2D", "not-a-code"]


def _subscription_tokens() -> list[str]:
    """The signed link of a subscription of each status, and a forged one."""
    rows = db.session.scalars(select(Subscription).where(Subscription.id.in_(
        select(func.min(Subscription.id)).group_by(Subscription.status))))
    return [subscriptions.manage_token(row) for row in rows] + ["not-a-token"]


def _subscription_confirmations() -> list[str]:
    rows = db.session.scalars(select(Subscription).where(Subscription.id.in_(
        select(func.min(Subscription.id)).group_by(Subscription.status))))
    return [subscriptions.confirmation_token(row) for row in rows] + ["not-a-token"]


def _audit_subjects() -> list[dict[str, str]]:
    """One subject of each type with a history, an unknown subject and an unknown type."""
    pairs = db.session.execute(select(AuditEntry.subject_type, func.min(AuditEntry.subject_id))
                               .group_by(AuditEntry.subject_type))
    return [{"subject_type": t, "subject_id": i} for t, i in sorted(pairs)] + [
        *({"subject_type": "case", "subject_id": i} for i in MISSING_IDS),
        {"subject_type": "no-such-type", "subject_id": "1"}]


def _evidence_files() -> list[dict[str, str]]:
    """A file of each type on its case, the same file asked under another case, none."""
    first = select(func.min(Evidence.id)).group_by(Evidence.content_type)
    rows = db.session.execute(select(Evidence.case_id, Evidence.id)
                              .where(Evidence.id.in_(first))).all()
    return [{"case_id": str(c), "evidence_id": str(e)} for c, e in sorted(rows)] + [
        {"case_id": str(rows[0][0] + 1), "evidence_id": str(rows[0][1])},
        *({"case_id": i, "evidence_id": i} for i in MISSING_IDS)]


# argument → its values; (endpoint, argument) when the same name means another table.
ARGUMENTS: dict[str | tuple[str, str], Callable[[], list[str]]] = {
    "user_id": lambda: _ids(User, User.role, User.active),
    "event_id": lambda: _ids(Event, Event.kind, Event.status),
    "case_id": lambda: _ids(Case, Case.status),
    "customer_id": lambda: _ids(Customer, Customer.erased_at.is_(None),
                                Customer.unsubscribed_at.is_(None), Customer.email == ""),
    "batch_id": lambda: _ids(ImportBatch, ImportBatch.status),
    "archive_id": lambda: _ids(EventArchive, EventArchive.status),
    "run_id": lambda: _ids(RetentionRun, RetentionRun.status),
    "mailing_id": lambda: _ids(Mailing, Mailing.status),
    "postmortem_id": lambda: _ids(Postmortem),
    "request_id": lambda: _ids(SignoffRequest, SignoffRequest.subject_type,
                               SignoffRequest.status),
    "notice_id": lambda: _ids(Notice, Notice.status, Notice.hidden),
    "verification_id": lambda: _ids(AuditVerification),
    "reply_id": lambda: _ids(CannedReply, CannedReply.retired_at.is_(None)),
    "claim_id": lambda: _ids(Claim, Claim.status),
    "import_id": lambda: _ids(EntitlementImport, EntitlementImport.status),
    "payout_batch_id": lambda: _ids(PayoutBatch, PayoutBatch.status, PayoutBatch.method),
    "payout_file_id": lambda: _ids(PayoutFile, PayoutFile.format, PayoutFile.status),
    "slug": _slugs,
    "token": _tokens,
    ("public.claim_confirm", "token"): _claim_tokens,
    ("subscriptions.subscription", "token"): _subscription_tokens,
    ("subscriptions.unsubscribe", "token"): _subscription_tokens,
    ("subscriptions.confirm", "token"): _subscription_confirmations,
    "filename": _static_files,
    ("notices.pdf_status", "pdf_id"): lambda: _ids(NoticePdf, NoticePdf.kind, NoticePdf.status),
    ("notices.pdf_file", "pdf_id"): lambda: _ids(NoticePdf, NoticePdf.kind, NoticePdf.status),
    ("postmortems.pdf_status", "pdf_id"): lambda: _ids(PostmortemPdf, PostmortemPdf.status),
    ("postmortems.pdf_file", "pdf_id"): lambda: _ids(PostmortemPdf, PostmortemPdf.status),
    ("payout_results.upload", "batch_id"): lambda: _ids(PayoutBatch, PayoutBatch.status),
    ("payout_results.batch_reconciliation", "batch_id"):
        lambda: _ids(PayoutBatch, PayoutBatch.status),
    "result_id": lambda: _ids(PayoutResult, PayoutResult.status),
    "programme_id": lambda: _ids(Programme, Programme.status),
    ("public.verify_code", "code"): _verification_codes,
    ("letters.pdf_status", "pdf_id"): lambda: _ids(LetterRun, LetterRun.status),
    ("letters.pdf_file", "pdf_id"): lambda: _ids(LetterRun, LetterRun.status),
    ("letters.zip_file", "pdf_id"): lambda: _ids(LetterRun, LetterRun.status),
}


# endpoint → its argument combinations, where the arguments belong together.
COMBINED: dict[str, Callable[[], list[dict[str, str]]]] = {
    "audit.history": _audit_subjects, "case_evidence.download": _evidence_files,
    "case_evidence.thumbnail": _evidence_files,
    "programme_mail.new_mailing": lambda: [
        {"programme_id": programme_id, "members": members}
        for programme_id in _ids(Programme, Programme.status)
        for members in ("launch", "recontact")]}


@dataclass
class Target:
    endpoint: str
    url: str
    # HX-Target values the view answers with a partial of its own (read from its source).
    hx_targets: list[str] = field(default_factory=list)


def _hx_targets(app: Flask, endpoint: str) -> list[str]:
    source = inspect.getsource(inspect.unwrap(app.view_functions[endpoint]))
    return re.findall(r"wants_partial\(\"([\w-]+)\"\)", source)


def _fillable(endpoint: str, arguments: set[str]) -> bool:
    if endpoint in COMBINED:
        return True
    [name, *more] = arguments
    return not more and ((endpoint, name) in ARGUMENTS or name in ARGUMENTS)


def _argument_sets(endpoint: str, arguments: set[str]) -> list[dict[str, str]]:
    if endpoint in COMBINED:
        return COMBINED[endpoint]()
    [name] = arguments  # more than one argument needs an entry in COMBINED
    values = ARGUMENTS.get((endpoint, name)) or ARGUMENTS[name]
    return [{name: value} for value in values()]


def crawl_targets(app: Flask) -> list[Target]:
    """A URL for every GET rule and every way of filling its arguments."""
    adapter = app.url_map.bind("localhost")
    found, unfillable = [], []
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if "GET" not in rule.methods or rule.endpoint in NOT_CRAWLED:
            continue
        if rule.arguments and not _fillable(rule.endpoint, rule.arguments):
            unfillable.append(rule.endpoint)
            continue
        targets = _hx_targets(app, rule.endpoint)
        for values in _argument_sets(rule.endpoint, rule.arguments) if rule.arguments else [{}]:
            found.append(Target(rule.endpoint, adapter.build(rule.endpoint, values), targets))
    assert unfillable == [], "fill their arguments in ARGUMENTS/COMBINED or list in NOT_CRAWLED"
    return found


def _query_names() -> list[str]:
    """Every query argument the portal reads: ``args.get("…")`` anywhere, and the fields of
    each form built from ``request.args``."""
    names = {"lang"}
    for path in sorted(PORTAL.rglob("*.py")):
        source = path.read_text()
        names |= set(re.findall(r"args\.(?:get|getlist)\(\"(\w+)\"", source))
        forms = re.findall(r"(\w+Form)\(request\.args\)", source)
        if forms:
            module = importlib.import_module(
                ".".join(path.relative_to(PORTAL.parent).with_suffix("").parts))
            for form in forms:
                names |= {name for name, _ in inspect.getmembers(
                    getattr(module, form), lambda v: isinstance(v, UnboundField))}
    return sorted(names)


class Tracebacks(logging.Handler):
    """The errors the 500 handler logs, so a failure names its cause."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            self.seen.append(_cause(record.exc_info[1]))


def _cause(exc: BaseException) -> str:
    """The exception and the last frames of ours it passed through."""
    ours = [f for f in traceback.extract_tb(exc.__traceback__)
            if f.filename.startswith(str(PORTAL.parent)) and ".venv" not in f.filename]
    where = " ← ".join(f"{Path(f.filename).name}:{f.lineno}" for f in reversed(ours[-3:]))
    return f"{type(exc).__name__}: {exc} at {where}"


def _crawl(client: Any, requests: Iterator[tuple[str, str, dict[str, str]]],
           ) -> tuple[int, dict[tuple[str, str], str]]:
    """GET each (endpoint, url, headers); the first 5xx per endpoint and kind, with its cause."""
    tracebacks = Tracebacks()
    logger = logging.getLogger("portal")
    logger.addHandler(tracebacks)
    errors: dict[tuple[str, str], str] = {}
    answered = 0
    try:
        for endpoint, url, headers in requests:
            tracebacks.seen.clear()
            try:
                response = client.get(url, headers=headers)
                response.get_data()  # a streamed body fails while it is read
                status = response.status_code
            except Exception as exc:  # reported below, with its cause
                status, tracebacks.seen[:] = 599, [_cause(exc)]
            answered += 1
            if status == 503 and endpoint in UNAVAILABLE_IS_AN_ANSWER:
                continue
            if status >= 500:
                kind = "htmx" if headers.get("HX-Request") else "page"
                cause = tracebacks.seen[-1] if tracebacks.seen else f"status {status}"
                errors.setdefault((endpoint, kind), f"{url}: {cause}")
    finally:
        logger.removeHandler(tracebacks)
    return answered, errors


def _report(errors: dict[tuple[str, str], str]) -> str:
    return "\n".join(f"{endpoint} ({kind}) {cause}" for (endpoint, kind), cause in errors.items())


def _variants(target: Target) -> list[dict[str, str]]:
    """The full page, the htmx swap, and the swap of each part the view renders alone."""
    return [{}, {"HX-Request": "true"},
            *({"HX-Request": "true", "HX-Target": t} for t in target.hx_targets)]


@dataclass
class Site:
    app: Flask
    credentials: dict[Role, tuple[str, str]]
    targets: list[Target]


@pytest.fixture(scope="module")
def site(database_url: str, redis_url: str, tmp_path_factory) -> Iterator[Site]:
    """One fill of the database for the whole module (each role and language reads it)."""
    instance = tmp_path_factory.mktemp("crawl")
    controller, _handler, port = start_server(instance / "mail", refuse={crawl_data.REFUSED})
    app = create_app(make_config(database_url, redis_url, instance, SMTP_HOST="127.0.0.1",
                                 SMTP_PORT=port, MAILING_RETRY_INLINE_SECONDS=0))
    try:
        with app.app_context():
            credentials = crawl_data.fill()
            targets = crawl_targets(app)
        yield Site(app, credentials, targets)
    finally:
        controller.stop()
        with app.app_context():
            empty_database()
            db.engine.dispose()
        Redis.from_url(redis_url).flushall()


def _client_for(site: Site, role: Role | None, locale: str) -> Any:
    client = site.app.test_client()
    client.set_cookie(LOCALE_COOKIE, locale)
    if role is not None:
        email, password = site.credentials[role]
        with site.app.app_context():  # staff read their profile's language
            db.session.execute(update(User).where(User.email == email).values(locale=locale))
            db.session.commit()
        answer = client.post("/login", data={"email": email, "password": password})
        assert answer.status_code == 302, f"{role} could not sign in"
    return client


def test_the_fill_holds_one_of_everything(site: Site) -> None:
    from portal.mailings.models import MailingRecipient

    with site.app.app_context():
        def statuses(model: Any) -> set[str]:
            return set(db.session.scalars(select(model.status).distinct()))

        assert {"sending", "done", "draft", "cancelled"} <= statuses(Mailing)
        assert {"sent", "failed", "skipped", "pending"} <= statuses(MailingRecipient)
        assert {"paid", "rejected", "awaiting_signoff", "in_progress"} <= statuses(Case)
        assert {"draft", "in_review", "published", "withdrawn"} <= statuses(Notice)
        assert "done" in statuses(PostmortemPdf) and "done" in statuses(EventArchive)
        assert {"done", "proposed"} <= statuses(RetentionRun)
        assert db.session.scalar(select(Customer.id).where(Customer.erased_at.is_not(None)))
        assert len(site.targets) > 100
        refused = set(db.session.scalars(select(AuditEntry.action).where(
            AuditEntry.action.endswith(".refused"))))
        assert {"case.duplicate.refused", "case.payment.refused"} <= refused
        from portal.mailings.repeats import repeat_of

        draft = db.session.scalar(select(Mailing).where(Mailing.status == "draft"))
        assert repeat_of(draft, mandatory=False) is not None  # its page asks to confirm


@pytest.mark.parametrize("locale", list(LOCALES))
@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.value if r else "anonymous")
def test_no_get_endpoint_answers_a_server_error(site: Site, role: Role | None,
                                                locale: str) -> None:
    client = _client_for(site, role, locale)
    language = {"Accept-Language": LOCALES[locale]}
    answered, errors = _crawl(client, ((t.endpoint, t.url, {**headers, **language})
                                       for t in site.targets for headers in _variants(t)))
    assert answered > 2 * len(site.targets)
    assert errors == {}, _report(errors)


@pytest.mark.parametrize("role", [None, Role.ADMIN], ids=["anonymous", "admin"])
def test_odd_query_arguments_never_give_a_server_error(site: Site, role: Role | None) -> None:
    """Every query argument the portal reads, set to odd values, on one URL per endpoint."""
    names = _query_names()
    assert {"page", "event", "customer", "lang"} <= set(names)
    client = _client_for(site, role, "en")
    first = {t.endpoint: t for t in reversed(site.targets)}
    requests = ((target.endpoint, f"{target.url}?{urlencode(dict.fromkeys(names, odd))}",
                 headers)
                for odd in ODD_QUERY_VALUES for target in first.values()
                for headers in _variants(target))
    answered, errors = _crawl(client, requests)
    assert answered >= len(first) * len(ODD_QUERY_VALUES)
    assert errors == {}, _report(errors)


def test_numbers_beyond_the_database_integer_name_no_row(site: Site) -> None:
    """Such a number once reached the database and overflowed there (a 500), in a route's
    id and in a query argument alike."""
    huge = str(2**64)
    client = _client_for(site, Role.ADMIN, "en")
    assert client.get(f"/cases/{huge}").status_code == 404
    assert client.get(f"/cases/{2**31}").status_code == 404
    listed = client.get(f"/cases/?event={huge}&assignee={huge}&page={huge}")
    assert listed.status_code == 200
    assert site.app.test_client().get(f"/notices?event={huge}").status_code == 200
