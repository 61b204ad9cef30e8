"""A static snapshot of the public site that nginx serves by itself, so the notices stay up
while the portal, its database or Redis do not.

The pages are rendered by the portal's own public views through its WSGI stack (a test client
in the same process), so each file is byte for byte what the live page answers, and the
validators the portal sends are kept with it:

    <PUBLIC_SNAPSHOT_DIR>/
        current -> gen-<time>-<pid>          swapped atomically (os.replace of a new symlink)
        gen-<time>-<pid>/
            manifest.json                    every page: its URL, file and headers
            notices.<lang>.html              the list
            notices/<slug>.<lang>.html       a notice page
            notices/feed.<lang>.atom         the feed
            pdf/<slug>.<lang> -> ../e/<sha256>~<file name>/page.pdf

A page's file has the page's Last-Modified as its mtime, so nginx's own ETag and
Last-Modified for it are the portal's (``portal.public.cache.static_etag``). A PDF's ETag is
its SHA-256, as the portal sends it: nginx reads it back from the folder its link resolves
to. A generation is never changed once ``current`` points at it; the previous one is kept (a
reader in the middle of a request), older ones are removed.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask, current_app
from werkzeug.http import parse_date

from portal.config import LOCALES
from portal.notices import services

CURRENT = "current"
GENERATION_PREFIX = "gen-"
# Only the validators and what nginx cannot know from the file are kept per page.
KEPT_HEADERS = ("ETag", "Last-Modified", "Cache-Control", "Vary", "Content-Type",
                "Content-Disposition")
SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")
DISPOSITION_NAME = re.compile(r'filename="?([^";]+)"?')


@dataclass(frozen=True)
class Page:
    key: str
    url: str


def snapshot_dir(app: Flask | None = None) -> Path:
    return Path((app or current_app).config["PUBLIC_SNAPSHOT_DIR"])


def pages() -> list[Page]:
    """Every page of the public site that the snapshot holds, in each language."""
    result: list[Page] = []
    notices = services.public_notices()
    for lang in LOCALES:
        result.append(Page(f"index.{lang}", f"/notices?lang={lang}"))
        result.append(Page(f"feed.{lang}", f"/notices/feed.atom?lang={lang}"))
        for notice in notices:
            result.append(Page(f"n.{notice.slug}.{lang}", f"/notices/{notice.slug}?lang={lang}"))
            result.append(Page(f"pdf.{notice.slug}.{lang}",
                               f"/notices/{notice.slug}.pdf?lang={lang}"))
    return result


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    """One writer at a time (two workers, or the CLI and a worker): the later one renders
    what is current after the earlier one has swapped, never the other way round."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _etag(headers: Any) -> str:
    raw = headers.get("ETag", "").removeprefix("W/").strip('"')
    return SAFE_NAME.sub("", raw)


def _file(page: Page) -> str:
    """Where the page lives in a generation: the paths nginx derives from the URL."""
    kind, rest = page.key.split(".", 1)
    slug, _, lang = rest.rpartition(".")
    return {"index": f"notices.{lang}.html", "feed": f"notices/feed.{lang}.atom",
            "n": f"notices/{slug}.{lang}.html", "pdf": f"pdf/{slug}.{lang}/page.pdf"}[kind]


def _write_page(gen: Path, page: Page, body: bytes, headers: Any) -> dict[str, Any]:
    target = gen / _file(page)
    if page.key.startswith("pdf."):
        # The portal's ETag of a PDF is its SHA-256: the folder's name carries it to nginx.
        folder = SAFE_NAME.sub("", headers.get("ETag", "").removeprefix("W/").strip('"'))
        disposition = DISPOSITION_NAME.search(headers.get("Content-Disposition", ""))
        if disposition:
            folder += "~" + SAFE_NAME.sub("_", disposition.group(1))
        content = gen / "e" / folder
        target.parent.parent.mkdir(parents=True, exist_ok=True)
        target.parent.symlink_to(Path("..") / "e" / folder)
        target = content / target.name
        content.mkdir(parents=True, exist_ok=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(body)
    modified = parse_date(headers.get("Last-Modified"))
    # nginx sends the file's mtime as Last-Modified and builds its ETag from it.
    stamp = modified.timestamp() if modified is not None else 0
    os.utime(target, (stamp, stamp))
    return {"url": page.url, "file": _file(page),
            "headers": {name: headers[name] for name in KEPT_HEADERS if name in headers}}


def write(app: Flask) -> Path:
    """Render the public site into a new generation and make it current; returns it.

    Runs inside an app context. Pages that are not there (a PDF still being made) are left
    out: nginx then asks the portal, which says so."""
    root = snapshot_dir(app)
    with _locked(root):
        gen = root / f"{GENERATION_PREFIX}{time.time_ns()}-{os.getpid()}"
        gen.mkdir(parents=True)
        manifest: dict[str, Any] = {}
        client = app.test_client()
        try:
            for page in pages():
                # Each page in its own app context, as a real request has: the locale and
                # whatever else a request keeps in ``g`` must not carry over to the next.
                with app.app_context():
                    response = client.get(page.url)
                if response.status_code != 200:
                    continue
                manifest[page.key] = _write_page(gen, page, response.get_data(),
                                                 response.headers)
            (gen / "manifest.json").write_text(json.dumps(
                {"written_at": time.time(), "pages": manifest}, indent=1, sort_keys=True))
            _fsync_tree(gen)
            _swap(root, gen)
        except BaseException:
            shutil.rmtree(gen, ignore_errors=True)
            raise
        _clean(root, keep={gen.name, _previous_name(root, gen.name)})
    return gen


def _fsync_tree(gen: Path) -> None:
    """The files are on disk before the link points at them (a crash leaves no empty page)."""
    for path in gen.rglob("*"):
        if path.is_symlink() or not path.is_file():
            continue
        with open(path, "rb") as f:
            os.fsync(f.fileno())


_PREVIOUS = ".previous"


def _swap(root: Path, gen: Path) -> None:
    current = root / CURRENT
    previous = os.readlink(current) if current.is_symlink() else ""
    temporary = root / f".{CURRENT}-{gen.name}"
    temporary.symlink_to(gen.name)
    os.replace(temporary, current)  # rename(2): readers see the old or the new, never none
    (root / _PREVIOUS).write_text(previous)


def _previous_name(root: Path, _current: str) -> str:
    try:
        return (root / _PREVIOUS).read_text().strip()
    except FileNotFoundError:
        return ""


def _clean(root: Path, keep: set[str]) -> None:
    for path in root.iterdir():
        if path.name.startswith(GENERATION_PREFIX) and path.name not in keep:
            shutil.rmtree(path, ignore_errors=True)


def current_manifest(app: Flask | None = None) -> dict[str, Any]:
    """The current generation's manifest (empty when no snapshot was written yet)."""
    return current_manifest_at(snapshot_dir(app))


def current_manifest_at(root: Path) -> dict[str, Any]:
    try:
        return json.loads((root / CURRENT / "manifest.json").read_text())
    except FileNotFoundError:
        return {}
