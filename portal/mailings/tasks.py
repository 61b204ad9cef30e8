"""RQ jobs of the mailings: one job per chunk of recipients, over one SMTP connection.

Exactly-once, as far as SMTP allows. Each recipient row is claimed (pending → sending, one
conditional UPDATE, committed) before its message is handed to the SMTP server, and marked sent
(committed) as soon as the server accepts it. A second job for the same chunk can never claim
the same row, so a message is never sent twice by two jobs. One window remains: if the worker
dies after the server accepted a message and before "sent" is committed, the row stays
``sending``. The reconciler cannot know whether the server got it, and sends it again (a lost
notice is worse than a repeated one) with the same Message-ID, so that window costs at most one
duplicate per killed worker, never a lost recipient.
"""

from __future__ import annotations

import logging
import smtplib
import time
from datetime import UTC, datetime, timedelta

from flask import current_app
from redis.exceptions import RedisError
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.timeouts import JobTimeoutException
from sqlalchemy import bindparam, delete, func, insert, select, update

from portal import jobs, metrics, uow
from portal.audit import services as audit
from portal.customers import links
from portal.customers.models import Customer
from portal.extensions import db, rq
from portal.i18n import N_
from portal.mail import transport
from portal.mailings import compose, services, signals
from portal.mailings.audience import Audience
from portal.mailings.models import (
    OPEN_RECIPIENT_STATUSES,
    Mailing,
    MailingRecipient,
    MailingStatus,
    MailingTestSend,
    MailingTestSendStatus,
    RecipientStatus,
)
from portal.models import utcnow

log = logging.getLogger(__name__)
QUEUE = "mail"


def chunk_job_id(mailing_id: int, chunk: int) -> str:
    return f"mailing-{mailing_id}-chunk-{chunk}"


def queue_chunks(mailing_id: int, chunks: list[int]) -> bool:
    """Queue the chunks; False when Redis is unreachable (the reconciler queues them later)."""
    ok = True
    for chunk in chunks:
        ok = jobs.enqueue(send_chunk_job, mailing_id, chunk,
                          job_id=chunk_job_id(mailing_id, chunk),
                          timeout=current_app.config["MAILING_JOB_TIMEOUT"]) and ok
        if not ok:
            break
    return ok


class Throttle:
    """At most ``rate`` messages a second for one mailing, across every worker: a counter per
    second in Redis. Without Redis the job keeps to the rate on its own."""

    def __init__(self, mailing_id: int, rate: int) -> None:
        self.key, self.rate = f"aftercare:mailing-rate:{mailing_id}", rate
        self.local_second, self.local_count = 0, 0

    def wait(self) -> None:
        if self.rate <= 0:
            return
        while True:
            now = time.time()
            second = int(now)
            try:
                pipe = rq.queue.connection.pipeline()
                pipe.incr(f"{self.key}:{second}")
                pipe.expire(f"{self.key}:{second}", 5)
                count = pipe.execute()[0]
            except RedisError:
                if second != self.local_second:
                    self.local_second, self.local_count = second, 0
                self.local_count += 1
                count = self.local_count
            if count <= self.rate:
                return
            time.sleep(second + 1 - now)


RECIPIENTS = MailingRecipient.__table__
LINKS = links.CustomerLink.__table__


class Ledger:
    """The rows' state changes for one job, one commit per message: the outcome of a message
    is committed together with the claim of the next one (or by :meth:`flush`), right after
    the SMTP server answered. Claims are always committed before the message goes out.
    Plain Core statements: the ORM's bulk-update path costs a millisecond a message."""

    def __init__(self, mailing_id: int) -> None:
        sending = select(Mailing.id).where(Mailing.id == mailing_id,
                                           Mailing.status == MailingStatus.SENDING).exists()
        self.claim_stmt = (
            update(RECIPIENTS)
            .where(RECIPIENTS.c.id == bindparam("row_id"),
                   RECIPIENTS.c.status == RecipientStatus.PENDING, sending)
            .values(status=RecipientStatus.SENDING, claimed_at=bindparam("now"),
                    attempts=RECIPIENTS.c.attempts + 1))
        self.outcome: tuple[int, dict[str, object]] | None = None

    def record(self, recipient_id: int, **values: object) -> None:
        self.outcome = (recipient_id, values)

    def _write_outcome(self) -> None:
        if self.outcome is not None:
            recipient_id, values = self.outcome
            db.session.execute(update(RECIPIENTS).where(RECIPIENTS.c.id == recipient_id)
                               .values(**values))
            self.outcome = None

    def claim(self, recipient_id: int) -> bool:
        """pending → sending, only while the mailing is sending (so a pause or a cancel stops
        the job at the next message)."""
        self._write_outcome()
        claimed = db.session.execute(self.claim_stmt,
                                     {"row_id": recipient_id, "now": utcnow()}).rowcount
        uow.commit()  # per message: the last outcome and this claim, before the SMTP call
        return claimed == 1

    def flush(self) -> None:
        self._write_outcome()
        uow.commit()  # the last message's outcome, as soon as the server answered


def _due_rows(mailing_id: int,
              chunk: int) -> list[tuple[int, int, str, str, int, str | None]]:
    now = utcnow()
    return list(db.session.execute(
        select(MailingRecipient.id, MailingRecipient.customer_id, MailingRecipient.email,
               MailingRecipient.locale, MailingRecipient.attempts,
               MailingRecipient.verification_code)
        .where(MailingRecipient.mailing_id == mailing_id, MailingRecipient.chunk == chunk,
               MailingRecipient.status == RecipientStatus.PENDING,
               (MailingRecipient.next_attempt_at.is_(None))
               | (MailingRecipient.next_attempt_at <= now))
        .order_by(MailingRecipient.id)))


def _next_retry_at(mailing_id: int, chunk: int) -> datetime | None:
    return db.session.scalar(select(func.min(MailingRecipient.next_attempt_at)).where(
        MailingRecipient.mailing_id == mailing_id, MailingRecipient.chunk == chunk,
        MailingRecipient.status == RecipientStatus.PENDING))


def _record_failure(ledger: Ledger, mailing_id: int, recipient_id: int, attempts: int,
                    exc: Exception, max_attempts: int, customer_id: int | None = None,
                    audience: dict[str, object] | None = None) -> bool:
    """Record, by the rulebook, why one message did not go out; True when the mailing paused
    (a connection failure: not this row's fault, so it goes back to waiting uncounted)."""
    failure = transport.classify(exc)
    if failure.scope == transport.CONNECTION:
        log.warning("mailing %s paused: %s", mailing_id, failure.reason)
        ledger.record(recipient_id, status=RecipientStatus.PENDING, attempts=attempts,
                      claimed_at=None)
        ledger.flush()
        services.pause_for_server(mailing_id, failure.reason)
        return True
    if not isinstance(exc, smtplib.SMTPException | OSError):
        log.exception("mailing %s: row %s failed", mailing_id, recipient_id)
    if failure.temporary and attempts + 1 < max_attempts:
        ledger.record(recipient_id, status=RecipientStatus.PENDING, last_error=failure.reason[:500],
                      next_attempt_at=utcnow() + transport.backoff(attempts + 1))
    else:
        ledger.record(recipient_id, status=RecipientStatus.FAILED, last_error=failure.reason[:500])
        if not failure.temporary and isinstance(exc, smtplib.SMTPRecipientsRefused):
            # the server refused the address itself: the message cannot reach this customer
            signals.undeliverable.send(mailing_id, audience=audience or {},
                                       customer_ids=[customer_id], reason=signals.BOUNCED)
    return False


@rq.job(queue=QUEUE)
@jobs.unit_of_work
def send_chunk_job(mailing_id: int, chunk: int) -> int:
    """Send one chunk's waiting recipients; returns how many messages went out. Safe to run
    twice, or beside another copy of itself."""
    mailing = db.session.get(Mailing, mailing_id)
    if mailing is None or mailing.status != MailingStatus.SENDING:
        return 0
    cfg = current_app.config
    parts = compose.MessageParts.for_mailing(mailing)
    sender = cfg["MAIL_FROM"]
    throttle = Throttle(mailing_id, int(cfg["MAILING_RATE_PER_SECOND"]))
    max_attempts = int(cfg["MAILING_MAX_ATTEMPTS"])
    inline_wait = float(cfg["MAILING_RETRY_INLINE_SECONDS"])
    sent = 0
    ledger = Ledger(mailing_id)
    sent_with, lifetime = f"mailing:{mailing_id}", links.link_lifetime_days()
    stored_audience = dict(mailing.audience or {})
    chosen = Audience.from_dict(stored_audience)
    with transport.Client() as client:
        while True:
            rows = _due_rows(mailing_id, chunk)
            people = compose.personal_values(db.session.scalars(
                select(Customer).where(Customer.id.in_([r[1] for r in rows]))), chosen)
            uow.commit()  # end the read transaction before the first claim
            for recipient_id, customer_id, email, locale, attempts, code in rows:
                # The message's personal link, committed with the claim (before it is sent).
                link_row, token = links.personal_row(customer_id, sent_with=sent_with,
                                                     lifetime_days=lifetime)
                db.session.execute(insert(LINKS), [link_row])
                if not ledger.claim(recipient_id):
                    db.session.execute(delete(LINKS).where(
                        LINKS.c.token_hash == link_row["token_hash"]))  # never sent
                    if db.session.get(Mailing, mailing_id, populate_existing=True).status \
                            != MailingStatus.SENDING:
                        return sent  # paused or cancelled: the rest stay as they are
                    continue  # another copy of this job has it
                msg_id = compose.message_id(mailing_id, recipient_id, parts.domain)
                person = people[customer_id]
                try:
                    message = compose.compose_message(
                        parts, to=email, name=person.name, locale=locale,
                        person=person, customer_id=customer_id, msg_id=msg_id,
                        personal_url=links.link_url(token), verification_code=code)
                    throttle.wait()
                    client.send(message, sender, [email])
                    metrics.mail_sent()
                except JobTimeoutException:
                    raise
                except Exception as exc:  # one bad row must not stop the chunk
                    metrics.mail_failed()
                    if _record_failure(ledger, mailing_id, recipient_id, attempts, exc,
                                       max_attempts, customer_id, stored_audience):
                        return sent
                    continue
                # last_error stays: the report shows what it took (a 451, a resend in doubt)
                ledger.record(recipient_id, status=RecipientStatus.SENT, sent_at=utcnow(),
                              message_id=msg_id)
                signals.delivered.send(mailing_id, audience=stored_audience,
                                       customer_ids=[customer_id])
                sent += 1
            ledger.flush()
            retry_at = _next_retry_at(mailing_id, chunk)
            uow.commit()  # end the read transaction before waiting for the next retry
            if retry_at is None:
                break
            wait = (retry_at - utcnow()).total_seconds()
            if wait > inline_wait:
                break  # the reconciler queues the chunk again when the retry is due
            time.sleep(max(wait, 0))
    services.finish_if_done(mailing_id)
    return sent


def test_job_id(test_id: int) -> str:
    return f"mailing-test-{test_id}"


def queue_test(test_id: int) -> bool:
    return jobs.enqueue(send_test_job, test_id, job_id=test_job_id(test_id), timeout=120)


@rq.job(queue=QUEUE)
@jobs.unit_of_work
def send_test_job(test_id: int) -> str | None:
    """Send one test message; claimed first, so a second run sends nothing."""
    claimed = db.session.execute(
        update(MailingTestSend).where(MailingTestSend.id == test_id,
                                      MailingTestSend.status == MailingTestSendStatus.QUEUED)
        .values(status=MailingTestSendStatus.SENDING)).rowcount
    uow.commit()  # the claim, before the message goes out: a second run finds it taken
    if claimed != 1:
        return None
    row = db.session.get(MailingTestSend, test_id)
    mailing = db.session.get(Mailing, row.mailing_id)
    parts = compose.MessageParts.for_mailing(mailing)
    customer = row.customer
    if customer is not None:
        person = compose.personal_values(
            [customer], Audience.from_dict(mailing.audience))[customer.id]
        locale = customer.locale
    else:
        person = compose.Personal(row.to_address, "")
        locale = "zh_CN"
    msg_id = f"<mailing-{mailing.id}-test-{row.id}@{parts.domain}>"
    try:
        # customer_id=None: the test carries an inert unsubscribe link, never the customer's.
        message = compose.compose_message(parts, to=row.to_address, name="", locale=locale,
                                          person=person, customer_id=None,
                                          msg_id=msg_id, subject_prefix="[TEST] ")
        with transport.Client() as client:
            client.send(message, current_app.config["MAIL_FROM"], [row.to_address])
    except Exception as exc:  # a test send is tried once; any failure is its answer
        row.status, row.error = MailingTestSendStatus.FAILED, transport.classify(exc).reason[:500]
        return None
    row.status, row.message_id, row.sent_at = MailingTestSendStatus.SENT, msg_id, utcnow()
    return msg_id


def _job_status(job_id: str) -> tuple[str | None, datetime | None]:
    try:
        job = Job.fetch(job_id, connection=rq.queue.connection)
    except NoSuchJobError:
        return None, None
    started = job.started_at
    if started is not None and started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    return job.get_status(refresh=True), started


def _recover_claims(mailing_id: int, chunk: int, claimed_before: datetime) -> tuple[int, int]:
    """Rows a dead worker left ``sending``: waiting again (the documented in-doubt window), or
    failed once they used their last attempt, so a message that stops every worker that sends
    it cannot stop the chunk forever. Returns (sent again, failed)."""
    max_attempts = int(current_app.config["MAILING_MAX_ATTEMPTS"])
    stale = (MailingRecipient.mailing_id == mailing_id, MailingRecipient.chunk == chunk,
             MailingRecipient.status == RecipientStatus.SENDING,
             MailingRecipient.claimed_at < claimed_before)
    given_up = db.session.execute(
        update(MailingRecipient).where(*stale, MailingRecipient.attempts >= max_attempts)
        .values(status=RecipientStatus.FAILED,
                last_error=f"the worker stopped while sending, {max_attempts} "
                "times or more; not sent again")
        .execution_options(synchronize_session=False)).rowcount
    again = db.session.execute(
        update(MailingRecipient).where(*stale)
        .values(status=RecipientStatus.PENDING,
                last_error="in doubt: the worker stopped while sending; "
                "sent again")
        .execution_options(synchronize_session=False)).rowcount
    return again, given_up


def requeue_lost_chunks(min_age: timedelta) -> int:
    """Queue again every chunk with due work whose job vanished (Redis emptied) or whose worker
    died (a started job with no claim for longer than the lease); rows a dead worker left
    ``sending`` go back to waiting: the documented single-message window."""
    now = utcnow()
    lease = timedelta(seconds=float(current_app.config["MAILING_LEASE_SECONDS"]))
    count = 0
    mailing_ids = db.session.scalars(select(Mailing.id).where(
        Mailing.status == MailingStatus.SENDING, Mailing.started_at < now - min_age)).all()
    for mailing_id in mailing_ids:
        chunks = db.session.execute(
            select(MailingRecipient.chunk, func.max(MailingRecipient.claimed_at))
            .where(MailingRecipient.mailing_id == mailing_id,
                   MailingRecipient.status.in_(OPEN_RECIPIENT_STATUSES),
                   (MailingRecipient.next_attempt_at.is_(None))
                   | (MailingRecipient.next_attempt_at <= now))
            .group_by(MailingRecipient.chunk)).all()
        for chunk, last_claim in chunks:
            status, started_at = _job_status(chunk_job_id(mailing_id, chunk))
            if status in (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED):
                continue
            if status == JobStatus.STARTED:
                activity = max(filter(None, [last_claim, started_at]), default=None)
                if activity is not None and activity > now - lease:
                    continue
            stale, given_up = _recover_claims(mailing_id, chunk, now - lease)
            if stale or given_up:
                log.warning("mailing %s chunk %s: %s row(s) in doubt sent again, %s failed",
                            mailing_id, chunk, stale, given_up)
                audit.record("mailing.recover", "mailing", mailing_id,
                             N_("Mailing %(id)d: chunk %(chunk)d recovered from a stopped "
                                "worker; in doubt and sent again: %(stale)d, failed after the "
                                "last attempt: %(failed)d", id=mailing_id, chunk=chunk,
                                stale=stale, failed=given_up),

                             after={"chunk": chunk, "in_doubt": stale, "failed": given_up},
                             actor=None)
            uow.commit()  # before the chunk is queued again: its job reads these rows
            if queue_chunks(mailing_id, [chunk]):
                count += 1
        services.finish_if_done(mailing_id)
    return count


def requeue_lost_tests(min_age: timedelta) -> int:
    stmt = select(MailingTestSend.id).where(
        MailingTestSend.status == MailingTestSendStatus.QUEUED,
        MailingTestSend.created_at < utcnow() - min_age)
    return jobs.requeue_lost(stmt, test_job_id, queue_test)
