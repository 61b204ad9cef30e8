"""Tampering by someone with full write access to the database: keyed entries (HMAC under a
key outside the database) and signed checkpoints (Ed25519) make a truncated tail and a
recomputed chain evident. Also the audit page's date filter in the portal's time zone."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, text

from portal.accounts import Role
from portal.audit import checkpoints
from portal.audit import services as audit
from portal.audit.chain import MAC_CONTEXT
from portal.audit.models import AuditCheckpoint, AuditEntry
from portal.extensions import db
from portal.i18n import N_, Message
from portal.lifecycle import archive as plain


def _entries() -> list[AuditEntry]:
    return list(db.session.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def _sql(statements: list[tuple[str, dict]]) -> None:
    """Run SQL behind the application's back, as an attacker with database access would
    (on PostgreSQL also past the append-only trigger)."""
    db.session.commit()
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        for sql, params in statements:
            conn.execute(text(sql), params)
    db.session.expire_all()


def _payments(users, n: int = 6) -> None:
    for i in range(n):
        audit.record("case.pay", "case", i, Message(f"Case {i} paid"),
                     after={"amount": f"{i}00.00"}, actor=users[Role.AGENT])
    db.session.commit()


def _plain_fields(entry: AuditEntry) -> dict:
    fields = {name: getattr(entry, name)
              for name in (*plain.HASHED_FIELDS, *plain.MESSAGE_FIELDS, plain.CONCERNS)}
    fields["created_at"] = entry.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return fields


def _edit_and_rehash(target_id: int, mac_for) -> None:
    """Change the amount of one entry, then recompute its hash and every later one (and their
    prev_hash), as an attacker would; ``mac_for(hash)`` is what they put in the HMAC column."""
    rows, prev = [], None
    for entry in _entries():
        fields = _plain_fields(entry)
        if entry.id == target_id:
            fields["after"] = {"amount": "99999.00"}
        if entry.id >= target_id:
            fields["prev_hash"] = prev or entry.prev_hash
            new_hash = plain.entry_hash(fields)  # the unkeyed SHA-256, from its own code
            rows.append(("UPDATE audit_entry SET after = :after, prev_hash = :prev, "
                         "hash = :hash, mac = :mac WHERE id = :id",
                         {"after": json.dumps(fields["after"]), "prev": fields["prev_hash"],
                          "hash": new_hash, "mac": mac_for(new_hash), "id": entry.id}))
            prev = new_hash
        else:
            prev = entry.hash
    # prev_hash and hash are unique: park the rewritten rows first, then write them.
    parked = [("UPDATE audit_entry SET prev_hash = :p, hash = :h WHERE id = :id",
               {"p": f"p{n}", "h": f"h{n}", "id": params["id"]})
              for n, (_sql_text, params) in enumerate(rows)]
    _sql(parked + rows)


def test_every_new_entry_carries_an_hmac_under_the_configured_key(app, users) -> None:
    key = app.config["AUDIT_HMAC_KEY"].encode()
    for entry in _entries():
        expected = hmac.new(key, MAC_CONTEXT + entry.hash.encode(), hashlib.sha256).hexdigest()
        assert entry.mac == expected
    assert (Path(app.instance_path) / "audit_hmac_key").stat().st_mode & 0o777 == 0o600


def test_truncating_the_tail_is_named_by_verify(app, runner, users) -> None:
    _payments(users)
    result = runner.invoke(args=["audit", "checkpoint"])
    checkpoint = f"Checkpoint: {len(users) + 6} entries"
    assert result.exit_code == 0 and checkpoint in result.output, result.output
    assert runner.invoke(args=["audit", "verify"]).exit_code == 0
    survivor = _entries()[-3]
    # The attacker removes the last two entries, and the checkpoints in the database too:
    # the checkpoint file outside the database still knows how long the chain was.
    _sql([("DELETE FROM audit_entry WHERE id > :id", {"id": survivor.id}),
          ("DELETE FROM audit_checkpoint", {})])
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 1
    assert f"Truncated: the chain ends after {len(users) + 4} entries" in result.output
    assert "the last 2 entries were removed" in result.output


def test_truncation_is_seen_from_the_database_checkpoint_alone(app, users) -> None:
    _payments(users)
    checkpoints.write_checkpoint()
    db.session.commit()
    Path(app.config["AUDIT_CHECKPOINT_FILE"]).unlink()
    _sql([("DELETE FROM audit_entry WHERE id = :id", {"id": _entries()[-1].id})])
    result = audit.verify_chain()
    assert not result.ok and result.finding["code"] == "truncated"
    assert result.finding["missing"] == 1


WITHOUT_THE_KEY = {
    "the old unkeyed algorithm": lambda new_hash: None,
    "the keyed algorithm with a guessed key": lambda new_hash: hmac.new(
        b"guessed", MAC_CONTEXT + new_hash.encode(), hashlib.sha256).hexdigest(),
}


@pytest.mark.parametrize("how", WITHOUT_THE_KEY)
def test_an_edit_with_every_later_hash_recomputed_is_named(app, runner, users, how) -> None:
    _payments(users)
    assert runner.invoke(args=["audit", "checkpoint"]).exit_code == 0
    target = _entries()[5]
    _edit_and_rehash(target.id, WITHOUT_THE_KEY[how])
    assert plain.entry_hash(_plain_fields(_entries()[-1])) == _entries()[-1].hash  # plain SHA ok
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 1
    assert f"BROKEN at entry {target.id}" in result.output, result.output


def test_an_edit_before_any_checkpoint_is_named_too(app, users) -> None:
    _payments(users)
    target = _entries()[4]
    _edit_and_rehash(target.id, WITHOUT_THE_KEY["the old unkeyed algorithm"])
    result = audit.verify_chain()
    assert not result.ok and result.broken_entry_id == target.id
    assert result.finding["code"] == "mac_missing"


def test_stripping_every_hmac_is_seen_against_the_checkpoint(app, users) -> None:
    _payments(users)
    checkpoints.write_checkpoint()
    db.session.commit()
    first = _entries()[0]
    _sql([("UPDATE audit_entry SET mac = NULL", {})])
    result = audit.verify_chain()
    assert not result.ok and result.broken_entry_id == first.id
    assert result.finding["code"] == "mac_missing"


def test_entries_from_before_keying_keep_verifying(app, users) -> None:
    """Rows written before this change have no HMAC; they verify by their hash, as before."""
    legacy = _entries()
    _sql([("UPDATE audit_entry SET mac = NULL", {})])  # as the migration leaves old rows
    _payments(users, 2)
    result = audit.verify_chain()
    assert result.ok and result.legacy == len(legacy) and result.checked == len(legacy) + 2
    checkpoints.write_checkpoint()
    db.session.commit()
    assert audit.verify_chain().ok


def test_a_forged_checkpoint_is_refused(app, users) -> None:
    _payments(users)
    checkpoints.write_checkpoint()
    db.session.commit()
    row = db.session.scalar(select(AuditCheckpoint))
    entries = len(users) + 6
    forged = row.payload.replace(f'"entries":{entries}', f'"entries":{entries - 2}')
    assert forged != row.payload
    _sql([("UPDATE audit_checkpoint SET payload = :p", {"p": forged})])
    result = audit.verify_chain()
    assert not result.ok and result.finding == {"code": "bad_checkpoint", "where": "database",
                                                "ref": row.id}


def test_checkpoints_are_appended_to_a_file_and_shown_on_the_audit_page(app, client, auth,
                                                                        users) -> None:
    from portal.audit.tasks import checkpoint_job

    assert checkpoint_job() is True
    assert checkpoint_job() is False  # nothing new: nothing signed
    auth.login(Role.AGENT)  # signing in is an entry
    assert checkpoint_job() is True
    lines = Path(app.config["AUDIT_CHECKPOINT_FILE"]).read_text().splitlines()
    entries = [json.loads(line)["checkpoint"]["entries"] for line in lines]
    assert entries == [len(users), len(users) + 1]
    page = client.get("/audit/")
    assert lines[-1].replace('"', "&#34;") in page.text
    assert json.loads(lines[-1])["public_key"] in page.text


def test_a_checkpoint_is_not_written_over_a_chain_that_lost_its_head(app, runner,
                                                                     users) -> None:
    _payments(users)
    assert runner.invoke(args=["audit", "checkpoint"]).exit_code == 0
    _sql([("DELETE FROM audit_entry WHERE id = :id", {"id": _entries()[-1].id})])
    audit.record("test.after", "thing", 1, Message("written after the truncation"))
    db.session.commit()
    result = runner.invoke(args=["audit", "checkpoint"])
    assert result.exit_code == 1 and "Refused" in result.output
    assert db.session.query(AuditCheckpoint).count() == 1


def test_the_verification_page_describes_the_finding_in_the_readers_language(
        app, client, auth, users, run_worker) -> None:
    from portal.audit import tasks

    _payments(users)
    checkpoints.write_checkpoint()
    db.session.commit()
    _sql([("DELETE FROM audit_entry WHERE id = :id", {"id": _entries()[-1].id})])
    verification = audit.request_verification(users[Role.ADMIN])
    db.session.commit()
    vid = verification.id
    tasks.verify_chain_job(vid)
    auth.login(Role.ADMIN)
    english = client.get(f"/audit/verify/{vid}?lang=en")
    # The request itself was appended after the cut: another entry stands in the head's place.
    assert "Truncated: the entries up to entry" in english.text
    assert "chain broken at entry" in english.text  # the tail replaced: its first entry
    chinese = client.get(f"/audit/verify/{vid}?lang=zh_CN")
    assert "截断" in chinese.text


def _entry_at(moment: datetime, summary: str, monkeypatch) -> None:
    monkeypatch.setattr(audit, "utcnow", lambda: moment)
    audit.record("test.time", "thing", 1, Message(summary))
    db.session.commit()


def test_date_filter_starts_at_local_midnight_in_shanghai(app, client, auth, users,
                                                          monkeypatch) -> None:
    """2026-12-01 in Asia/Shanghai starts at 2026-11-30 16:00 UTC (+08:00), not at 15:54
    (pytz's local mean time, +08:06)."""
    app.config["BABEL_DEFAULT_TIMEZONE"] = "Asia/Shanghai"
    _entry_at(datetime(2026, 11, 30, 15, 57, tzinfo=UTC), "late on 30 November", monkeypatch)
    _entry_at(datetime(2026, 11, 30, 16, 0, tzinfo=UTC), "first minute of 1 December",
              monkeypatch)
    monkeypatch.undo()
    auth.login(Role.AGENT)
    december = client.get("/audit/?action=test.time&date_from=2026-12-01").text
    assert "first minute of 1 December" in december and "late on 30 November" not in december
    november = client.get("/audit/?action=test.time&date_to=2026-11-30").text
    assert "late on 30 November" in november and "first minute of 1 December" not in november


def test_the_verification_page_names_a_plain_truncation(app, client, auth, users) -> None:
    from portal.audit import tasks

    verification = audit.request_verification(users[Role.ADMIN])
    _payments(users, 2)
    checkpoints.write_checkpoint()
    db.session.commit()
    vid = verification.id
    _sql([("DELETE FROM audit_entry WHERE id > :id", {"id": _entries()[-3].id})])
    tasks.verify_chain_job(vid)
    auth.login(Role.ADMIN)
    page = client.get(f"/audit/verify/{vid}?lang=en")
    assert "chain broken</span>" in page.text
    assert "the last 2 entries were removed" in page.text


def test_checkpoints_are_on_the_cron_schedule(app) -> None:
    from portal.audit.tasks import CHECKPOINT_INTERVAL_SECONDS, checkpoint_job
    from portal.extensions import rq

    scheduled = [job for job in rq.make_cron_scheduler().get_jobs()
                 if job.func is checkpoint_job.func]
    assert [job.interval for job in scheduled] == [CHECKPOINT_INTERVAL_SECONDS]


# --- one entry concerning many subjects --------------------------------------------------------


def _paid_chunk(users) -> AuditEntry:
    _payments(users, 2)
    entry = audit.record("case.paid", "payout_result", 7,
                         N_("%(count)d cases paid", count=3),
                         after={"payments": [[11], [12], [13]]}, actor=users[Role.FINANCE],
                         concerns={"case": [13, 11, 12, 11]})
    _payments(users, 1)
    return entry


def test_an_entry_concerning_many_subjects_is_in_each_history(app, users) -> None:
    entry = _paid_chunk(users)
    assert entry.concerns == {"case": ["11", "12", "13"]}
    for case_id in (11, 12, 13):
        assert entry.id in [e.id for e in audit.history("case", case_id)]
    assert entry.id not in [e.id for e in audit.history("case", 14)]
    assert entry.id in [e.id for e in audit.history("payout_result", 7)]
    # The subject's own entries are there as before.
    assert [e.action for e in audit.history("case", 0)] == ["case.pay", "case.pay"]
    assert audit.verify_chain().ok


@pytest.mark.parametrize("tamper", ["forged", "removed"])
def test_the_index_of_concerned_subjects_is_held_to_the_hashed_list(app, users,
                                                                   tamper) -> None:
    entry = _paid_chunk(users)
    if tamper == "forged":  # someone adds a case to a payment entry's reach
        _sql([("INSERT INTO audit_entry_subject (subject_type, subject_id, entry_id) "
               "VALUES ('case', '99', :id)", {"id": entry.id})])
        assert entry.id in [e.id for e in audit.history("case", 99)]
    else:  # or hides the payment from one case's history
        _sql([("DELETE FROM audit_entry_subject WHERE entry_id = :id AND subject_id = '12'",
               {"id": entry.id})])
    result = audit.verify_chain()
    assert not result.ok
    assert result.finding == {"code": "concerns_mismatch", "entry": entry.id}
    assert result.broken_entry_id == entry.id
    assert "index of the subjects it concerns" in result.reason


def test_changing_the_concerned_list_breaks_the_hash(app, users) -> None:
    entry = _paid_chunk(users)
    _sql([("UPDATE audit_entry SET concerns = :c WHERE id = :id",
           {"c": json.dumps({"case": ["11", "12"]}), "id": entry.id}),
          ("DELETE FROM audit_entry_subject WHERE entry_id = :id AND subject_id = '13'",
           {"id": entry.id})])
    result = audit.verify_chain()
    assert result.finding == {"code": "hash_mismatch", "entry": entry.id}
