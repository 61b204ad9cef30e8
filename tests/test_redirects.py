"""Open redirects: every ``next`` and Referer goes through one helper that keeps only paths on
this site."""

from __future__ import annotations

import pytest

from portal.accounts import Role
from portal.redirects import local_target
from tests.case_helpers import make_case

FOREIGN = [
    "//evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    "/\r\n/evil.example",
    "/ /evil.example",
    "%2F%2Fevil.example",
    "/%2F/evil.example",
    "/%5Cevil.example",
    "/%252F/evil.example",
    "/%09/evil.example",
    "https:evil.example",
    "https://evil.example/",
    "http:/evil.example",
    "javascript:alert(1)",
    "/dashboard\r\nSet-Cookie: x=1",
    "",
    None,
]
LOCAL = [
    "/",
    "/dashboard",
    "/audit/?action=auth.login&page=2",
    "/cases/?q=%E5%BC%A0%E4%B8%89&status=new&sort=-due",
    "/notices/3?lang=en",
    "/cases/?next=//evil.example",  # only where it goes matters, not what it carries
]


@pytest.mark.parametrize("target", FOREIGN)
def test_foreign_or_malformed_targets_are_refused(target: str | None) -> None:
    assert local_target(target) is None


@pytest.mark.parametrize("target", LOCAL)
def test_local_paths_survive_with_their_query_string(target: str) -> None:
    assert local_target(target) == target


@pytest.mark.parametrize("target", FOREIGN[:-2])
def test_language_switch_never_leaves_the_site(client, target: str) -> None:
    response = client.post("/language", data={"locale": "en", "next": target})
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


@pytest.mark.parametrize("target", LOCAL)
def test_language_switch_returns_to_the_page(client, target: str) -> None:
    response = client.post("/language", data={"locale": "en", "next": target})
    assert response.headers["Location"] == target


@pytest.mark.parametrize("target", ["/\\evil.com", "/\t/evil.com", "//evil.com"])
def test_sign_in_never_leaves_the_site(client, users, target: str) -> None:
    data = {"email": users[Role.AGENT].email, "password": "correct-horse-battery"}
    response = client.post("/login", query_string={"next": target}, data=data)
    assert response.headers["Location"] == "/dashboard"


def test_bulk_result_link_uses_only_a_same_site_referrer(client, auth, users) -> None:
    case = make_case(users)
    data = {"bulk_action": "assign", "case_ids": [str(case.id)],
            "assignee": str(users[Role.AGENT].id)}
    auth.login(Role.AGENT)
    foreign = client.post("/cases/bulk", data=data,
                          headers={"Referer": "https://evil.example/cases/"})
    assert "Reload the list" in foreign.text and "evil.example" not in foreign.text
    own = client.post("/cases/bulk", data=data,
                      headers={"Referer": "http://localhost/cases/?status=new"})
    assert 'href="/cases/?status=new"' in own.text
