"""What a chain check found, in the reader's language. A finding is stored as data
(``{"code": …, details}``) and described when shown, so each reader gets their language."""

from __future__ import annotations

from typing import Any

from flask_babel import gettext as _


def describe(finding: dict[str, Any]) -> str:
    code = finding.get("code")
    if code == "prev_mismatch":
        return _("Entry %(entry)s does not link to the entry before it: entries were deleted "
                 "or reordered.", entry=finding["entry"])
    if code == "hash_mismatch":
        return _("Entry %(entry)s does not match its hash: its content was changed.",
                 entry=finding["entry"])
    if code == "mac_mismatch":
        return _("Entry %(entry)s does not match its HMAC: it was changed and re-hashed "
                 "without the audit key (or AUDIT_HMAC_KEY is not the key it was written "
                 "with).", entry=finding["entry"])
    if code == "mac_missing":
        return _("Entry %(entry)s carries no HMAC although entries are keyed since entry "
                 "%(keyed_from)s: it was re-hashed with the old unkeyed algorithm.",
                 entry=finding["entry"], keyed_from=finding["keyed_from"])
    if code == "concerns_mismatch":
        return _("Entry %(entry)s: the index of the subjects it concerns does not match the "
                 "list its hash covers: rows were added to or removed from that index.",
                 entry=finding["entry"])
    if code == "checkpoint_mismatch":
        return _("Entry %(entry)s is not the one the checkpoint of %(at)s signed as entry "
                 "number %(entries)s: the chain was rewritten.", entry=finding["entry"],
                 at=finding["at"], entries=finding["entries"])
    if code == "truncated":
        return _("Truncated: the chain ends after %(checked)s entries, but the checkpoint of "
                 "%(at)s signed %(entries)s (up to entry %(head_id)s): the last %(missing)s "
                 "entries were removed.", checked=finding["checked"], at=finding["at"],
                 entries=finding["entries"], head_id=finding["head_id"],
                 missing=finding["missing"])
    if code == "tail_replaced":
        return _("Truncated: the entries up to entry %(head_id)s, signed by the checkpoint of "
                 "%(at)s, were removed; entry %(entry)s now stands in their place.",
                 head_id=finding["head_id"], at=finding["at"], entry=finding["entry"])
    if code == "bad_checkpoint":
        where = _("in the database") if finding.get("where") == "database" else _(
            "in the checkpoint file")
        return _("Checkpoint %(ref)s %(where)s does not carry a valid signature: it was forged "
                 "or changed.", ref=finding["ref"], where=where)
    return _("Unknown finding: %(code)s", code=code)
