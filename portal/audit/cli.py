"""``flask --app portal audit verify`` and ``audit checkpoint``: check and anchor the chain
from the shell."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from portal import uow
from portal.audit import checkpoints, services

audit_cli = AppGroup("audit", help="Inspect the audit trail.")


@audit_cli.command("verify")
def verify() -> None:
    """Recompute the hash chain and its HMACs, hold it against every signed checkpoint;
    exit 1 naming the first broken entry or the truncation."""
    result = services.verify_chain()
    anchor = result.checkpoint
    if result.ok:
        click.echo(f"OK: {result.checked} entries, chain intact.")
        if anchor:
            click.echo(f"Matches the checkpoint of {anchor.created_at} ({anchor.entries} "
                       "entries).")
        else:
            click.echo("No checkpoint yet: run `audit checkpoint` so truncation can be seen.")
        if result.legacy:
            click.echo(f"{result.legacy} entries from before keying are checked by their "
                       "hash only.")
        return
    where = f" at entry {result.broken_entry_id}" if result.broken_entry_id else ""
    click.echo(f"BROKEN{where}: {result.reason} ({result.checked} entries before it are "
               "intact).", err=True)
    raise SystemExit(1)


@audit_cli.command("checkpoint")
def checkpoint() -> None:
    """Sign the chain's length and head now (also appended to the checkpoint file)."""
    try:
        written = checkpoints.write_checkpoint()
    except checkpoints.ChainDoesNotExtend as exc:
        uow.rollback()
        click.echo(f"Refused: {exc}.", err=True)
        raise SystemExit(1) from exc
    uow.commit()  # the command's unit of work
    if written is None:
        click.echo("Nothing new since the last checkpoint.")
        return
    click.echo(f"Checkpoint: {written.entries} entries, head {written.head_hash}.")
    click.echo(f"Appended to {checkpoints.checkpoint_file()}:")
    click.echo(written.line())
