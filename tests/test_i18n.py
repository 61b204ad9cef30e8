"""Simplified Chinese and English: choice of locale, and a complete, current catalogue."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from babel.messages.pofile import read_po

from portal.accounts import Role, User
from portal.extensions import db

ROOT = Path(__file__).resolve().parent.parent
PO = ROOT / "portal/translations/zh_Hans_CN/LC_MESSAGES/messages.po"


def test_accept_language_picks_the_locale(client) -> None:
    zh = client.get("/login", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"})
    assert '<html lang="zh-CN">' in zh.text and "登录" in zh.text
    en = client.get("/login", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert '<html lang="en">' in en.text and "Sign in" in en.text


def test_visitor_switch_sets_a_cookie_that_wins_over_the_browser(client) -> None:
    response = client.post("/language", data={"locale": "en", "next": "/login"})
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    page = client.get("/login", headers={"Accept-Language": "zh-CN"})
    assert '<html lang="en">' in page.text


def test_switch_refuses_unknown_locales_and_foreign_redirects(client) -> None:
    assert client.post("/language", data={"locale": "fr"}).status_code == 400
    response = client.post("/language", data={"locale": "en", "next": "//evil.example/"})
    assert response.headers["Location"] == "/"


def test_staff_language_is_kept_in_the_profile(client, auth, users) -> None:
    auth.login(Role.AGENT)
    response = client.post("/profile", data={"name": "Agent", "locale": "zh_CN"})
    assert response.status_code == 302
    assert db.session.get(User, users[Role.AGENT].id).locale == "zh_CN"
    page = client.get("/dashboard", headers={"Accept-Language": "en"})
    assert "工作台" in page.text
    client.post("/language", data={"locale": "en", "next": "/dashboard"})
    assert db.session.get(User, users[Role.AGENT].id).locale == "en"


def test_catalogue_translates_every_message() -> None:
    with PO.open("rb") as fh:
        catalogue = read_po(fh)
    untranslated = [
        m.id for m in catalogue
        if m.id and not (all(m.string) if isinstance(m.string, tuple) else m.string)
    ]
    fuzzy = [m.id for m in catalogue if m.id and m.fuzzy]
    assert untranslated == [] and fuzzy == []


def test_catalogue_is_current_with_the_code(tmp_path) -> None:
    """Every translatable string in code and templates is in the catalogue (run `make
    messages` after adding strings)."""
    pot = tmp_path / "messages.pot"
    subprocess.run(
        [sys.executable, "-m", "babel.messages.frontend", "-q", "extract", "-F", "babel.cfg",
         "-k", "_l", "-k", "lazy_gettext", "-k", "lazy_pgettext:1c,2", "--no-location",
         "-o", str(pot), "."],
        cwd=ROOT, check=True,
    )
    with pot.open("rb") as fh:
        wanted = {(m.context, m.id if isinstance(m.id, str) else m.id[0]) for m in read_po(fh)
                  if m.id}
    with PO.open("rb") as fh:
        have = {(m.context, m.id if isinstance(m.id, str) else m.id[0]) for m in read_po(fh)
                if m.id}
    assert sorted(wanted - have, key=str) == []


def test_placeholders_survive_translation() -> None:
    import re

    with PO.open("rb") as fh:
        catalogue = read_po(fh)
    pattern = re.compile(r"%\(\w+\)[sd]")
    for m in catalogue:
        if not m.id:
            continue
        ids = m.id if isinstance(m.id, tuple) else (m.id,)
        strings = m.string if isinstance(m.string, tuple) else (m.string,)
        for s in strings:
            assert set(pattern.findall(s)) == set(pattern.findall(ids[-1])), m.id


# A conversion specifier that newstyle gettext can fill: %(name)s, %(count)d, %(rate).1f ...
NAMED_PLACEHOLDER = r"%\(\w+\)[#0\- +]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa]"


def test_catalogues_use_percent_only_in_named_placeholders_or_doubled() -> None:
    """Newstyle gettext applies ``%`` formatting to every string, so a bare ``%`` (in the
    English msgid or in a translation) raises ValueError on the page that shows it."""
    import re

    allowed = re.compile(rf"%%|{NAMED_PLACEHOLDER}")
    catalogues = [ROOT / "portal/translations/messages.pot",
                  *sorted((ROOT / "portal/translations").glob("**/messages.po"))]
    assert PO in catalogues
    bare = []
    for path in catalogues:
        with path.open("rb") as fh:
            catalogue = read_po(fh)
        for message in catalogue:
            if not message.id:
                continue
            texts = [*(message.id if isinstance(message.id, tuple) else (message.id,)),
                     *(message.string if isinstance(message.string, tuple)
                       else (message.string,))]
            bare += [(path.name, text) for text in texts if "%" in allowed.sub("", text or "")]
    assert bare == []
