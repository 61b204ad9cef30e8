"""Flash messages say what happened to what ("Case C-2026-00005 proposed to legal"), never a
bare "Done." or "Saved.", in both languages."""

from __future__ import annotations

import ast
from pathlib import Path

from portal.accounts import Role
from portal.cases import services as cases
from portal.extensions import db
from tests.case_helpers import make_case

PORTAL = Path(__file__).resolve().parent.parent / "portal"
GETTEXT = {"_", "_l", "gettext", "lazy_gettext", "ngettext"}
BARE = {"Done.", "Saved.", "Nothing changed.", "Published.", "Withdrawn.", "Resumed.",
        "Status changed.", "Settings saved.", "Decision recorded.", "Task added.",
        "Payment recorded.", "Customer added.", "Event opened.", "Sending started."}
# Messages about the reader's own session or account, which name nothing else.
ABOUT_THE_READER = {"You have signed out.", "Your password has been changed.",
                    "Your profile has been saved.", "Please sign in to continue.",
                    "Minutes must be a whole number."}
# Settings pages: one of each, the message names which settings were saved.
NAMED_SETTINGS = {"Case settings saved: SLA hours and sign-off thresholds.",
                  "Response targets saved for every severity.",
                  "PDF stamp saved; it applies to PDFs rendered from now on.",
                  "The PDF stamp already was that; nothing changed.",
                  "Notice contact details saved: hotline and contact e-mail.",
                  "The notice contact details already were these; nothing changed.",
                  "Update cadence saved: minutes per severity.",
                  "The update cadence already was this; nothing changed."}


def _messages(node: ast.AST) -> list[str]:
    """The msgids of the gettext calls in ``node`` (both branches of a conditional)."""
    found = []
    for call in ast.walk(node):
        if (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
                and call.func.id in GETTEXT and call.args
                and isinstance(call.args[0], ast.Constant)):
            found.append(call.args[0].value)
    return found


def _flashed() -> list[tuple[str, int, str]]:
    """Every literal message handed to ``flash`` or to a job's ``queued=`` message, and every
    gettext literal of the views (what ``_act``/``_action_done`` flash is built there)."""
    found = []
    for path in PORTAL.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            if name == "flash" and node.args:
                found += [(str(path), node.lineno, m) for m in _messages(node.args[0])]
            for keyword in node.keywords:
                if keyword.arg in ("queued", "success"):
                    found += [(str(path), node.lineno, m) for m in _messages(keyword.value)]
    return found


def test_no_bare_done_or_saved_anywhere_in_the_portal() -> None:
    for path in PORTAL.rglob("*.py"):
        bare = set(_messages(ast.parse(path.read_text(encoding="utf-8")))) & BARE
        assert not bare, f"{path}: {bare}"


def test_every_flash_names_what_it_is_about() -> None:
    flashed = _flashed()
    assert len(flashed) > 30  # the scan sees the views
    for path, line, message in flashed:
        if message in ABOUT_THE_READER | NAMED_SETTINGS:
            continue
        assert "%(" in message, f"{path}:{line}: {message!r} names nothing"
        assert message not in BARE


def _proposed_case(users):
    case = make_case(users, amount="9000.00")
    cases.change_status(case, "start", actor=users[Role.AGENT])
    db.session.commit()
    return case


def test_a_case_proposed_to_legal_says_so_in_english(client, auth, users) -> None:
    case = _proposed_case(users)
    auth.login(Role.AGENT)
    page = client.post(f"/cases/{case.id}/step", data={"action": "propose"},
                       follow_redirects=True).text
    assert f"Case {case.ref} proposed to legal for sign-off." in page
    assert "Done." not in page


def test_a_case_proposed_to_legal_says_so_in_chinese(client, auth, users) -> None:
    case = _proposed_case(users)
    auth.login(Role.AGENT)
    client.post("/language", data={"locale": "zh_CN"})
    page = client.post(f"/cases/{case.id}/step", data={"action": "propose"},
                       follow_redirects=True).text
    assert f"案件 {case.ref} 已提交法务审批。" in page


def test_a_step_names_the_case_and_its_new_status(client, auth, users) -> None:
    case = make_case(users)
    db.session.commit()
    auth.login(Role.AGENT)
    client.post("/language", data={"locale": "zh_CN"})
    page = client.post(f"/cases/{case.id}/step", data={"action": "start"},
                       follow_redirects=True).text
    assert f"案件 {case.ref} 现为“处理中”。" in page


def test_a_saved_customer_and_an_added_note_name_their_subject(client, auth, users) -> None:
    case = make_case(users)
    db.session.commit()
    auth.login(Role.AGENT)
    page = client.post(f"/cases/{case.id}/notes", data={"kind": "internal", "body": "Called"},
                       follow_redirects=True).text
    assert f"Internal note added to case {case.ref}." in page
    client.post("/language", data={"locale": "zh_CN"})
    page = client.post(f"/cases/{case.id}/notes", data={"kind": "internal", "body": "再次"},
                       follow_redirects=True).text
    assert f"已为案件 {case.ref} 添加内部备注。" in page
