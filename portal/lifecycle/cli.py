"""``flask lifecycle …``: checking an export archive from the command line."""

from __future__ import annotations

import sys

import click
from flask.cli import AppGroup

from portal.lifecycle.archive import verify_archive

lifecycle_cli = AppGroup("lifecycle", help="Export archives, retention and erasure.")


@lifecycle_cli.command("verify-archive")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
def verify_archive_command(path: str) -> None:
    """Recompute the file digests and audit hashes of an export archive."""
    problems = verify_archive(path)
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        sys.exit(1)
    click.echo("OK: every file and audit entry matches.")
