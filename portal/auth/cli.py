"""``flask --app portal users …``: manage staff accounts from the shell."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from portal import uow
from portal.accounts import Role
from portal.auth import services
from portal.errors import RuleViolation

users_cli = AppGroup("users", help="Manage staff accounts.")


@users_cli.command("create")
@click.argument("email")
@click.option("--role", type=click.Choice([r.value for r in Role]), default=Role.AGENT.value)
@click.option("--name", default="", help="Display name (defaults to the e-mail).")
@click.option("--password", help="Initial password; generated and printed when omitted.")
def create(email: str, role: str, name: str, password: str | None) -> None:
    """Create a staff account."""
    try:
        user, initial = services.create_user(
            email, name or email, role, password, must_change_password=password is None
        )
    except RuleViolation as err:
        raise click.ClickException(err.message) from err
    uow.commit()  # the command's unit of work
    click.echo(f"Created {user.email} ({user.role}).")
    if password is None:
        click.echo(f"Initial password (must be changed at first sign-in): {initial}")
