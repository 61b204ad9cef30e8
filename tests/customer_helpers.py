"""Builders shared by the customer page tests."""

from __future__ import annotations

from flask.testing import FlaskClient

from portal.customers import links
from portal.customers.models import Customer
from portal.extensions import db


def personal_token(customer: Customer, sent_with: str = "test") -> str:
    """A personal link's token for ``customer``, committed."""
    _link, token = links.issue_personal(customer, sent_with=sent_with)
    db.session.commit()
    return token


def open_page(client: FlaskClient, customer: Customer) -> str:
    """Follow a new personal link of ``customer`` with ``client``; returns its token."""
    token = personal_token(customer)
    response = client.get(f"/my/{token}")
    assert response.status_code == 303, response.data[:500]
    return token


def my_cookie(client: FlaskClient):
    return client.get_cookie("aftercare_my", path="/my")
