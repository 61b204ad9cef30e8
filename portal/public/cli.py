"""``flask --app portal public snapshot``: write the static snapshot of the public site now
(after a deploy, a restore, or when no worker runs)."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from portal.public import snapshot

public_cli = AppGroup("public", help="The public site: its static snapshot for nginx.")


@public_cli.command("snapshot")
def write_snapshot() -> None:
    """Render the public pages, PDFs and feed into a new snapshot and make it current."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if not app.config.get("PUBLIC_SNAPSHOT_DIR"):
        raise click.ClickException("PUBLIC_SNAPSHOT_DIR is empty: no snapshot is wanted.")
    gen = snapshot.write(app)
    pages = snapshot.current_manifest(app).get("pages", {})
    click.echo(f"Snapshot {gen.name}: {len(pages)} pages in {snapshot.snapshot_dir(app)}")
