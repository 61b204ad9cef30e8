"""``flask --app portal backup [PATH]`` and ``flask --app portal restore ARCHIVE``."""

from __future__ import annotations

from pathlib import Path

import click
from flask.cli import with_appcontext

from portal.backups import restore as restoring
from portal.backups import services
from portal.backups.services import BackupError


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _summary(manifest: services.Manifest) -> None:
    click.echo(f"  portal {manifest.portal_version}, schema revision "
               f"{manifest.schema_revision or '(none)'}, {manifest.dialect} database, "
               f"made {manifest.created_at}")
    for kind, (count, size) in sorted(services.describe(manifest).items()):
        click.echo(f"  {kind}: {count} file{'s' if count != 1 else ''}, {_size(size)}")
    if manifest.keys_from_environment:
        click.echo("  Not in the archive (set in the environment, keep them yourself): "
                   + ", ".join(manifest.keys_from_environment))


@click.command("backup")
@click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
@with_appcontext
def backup(path: Path | None) -> None:
    """Write the database and the instance files to one archive (default:
    instance/backups/aftercare-<time>.tar.gz), with a manifest of SHA-256s. Never overwrites."""
    target = path or services.default_path()
    try:
        manifest = services.backup(target)
    except BackupError as exc:
        click.echo(f"Refused: {exc}", err=True)
        raise SystemExit(1) from exc
    total = sum(m.size for m in manifest.files)
    click.echo(f"Wrote {target.resolve()} ({_size(target.stat().st_size)}; "
               f"{len(manifest.files)} files, {_size(total)} before compression):")
    _summary(manifest)
    click.echo("It holds the keys kept as instance files: store it as carefully as they are.")


@click.command("restore")
@click.argument("archive", type=click.Path(dir_okay=False, path_type=Path))
@with_appcontext
def restore(archive: Path) -> None:
    """Restore a backup into an EMPTY database and instance, after checking every SHA-256."""
    try:
        manifest = restoring.restore(archive)
    except BackupError as exc:
        click.echo(f"Refused, nothing restored: {exc}", err=True)
        raise SystemExit(1) from exc
    click.echo(f"Restored {archive} ({len(manifest.files)} files, every SHA-256 checked):")
    _summary(manifest)
    if manifest.schema_revision and manifest.schema_revision != services.schema_revision():
        click.echo("The schema revision read back differs; check the database.", err=True)
    click.echo("Next: `flask --app portal db upgrade` (if this portal is newer), then "
               "`flask --app portal audit verify`. Keys set in the environment win over the "
               "restored key files: they must be the ones the backup was made with.")
