"""``flask --app portal audit verify``: recompute the hash chain from the shell."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from portal.audit import services

audit_cli = AppGroup("audit", help="Inspect the audit trail.")


@audit_cli.command("verify")
def verify() -> None:
    """Recompute the hash chain; exit 1 naming the first broken entry."""
    result = services.verify_chain()
    if result.ok:
        click.echo(f"OK: {result.checked} entries, chain intact.")
        return
    click.echo(
        f"BROKEN at entry {result.broken_entry_id}: {result.reason} "
        f"({result.checked} entries before it are intact).",
        err=True,
    )
    raise SystemExit(1)
