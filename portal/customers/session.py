"""The customer session: who is on ``/my`` after following a link.

Following a link sets a cookie of its own (not the staff session): signed with the app's
secret (itsdangerous, with the key fallbacks), holding the customer id, the link id and the
language chosen on the page; ``HttpOnly``, ``SameSite=Lax``, ``Secure`` in production, path
``/my`` (so no other page receives it), valid ``CUSTOMER_SESSION_MINUTES`` (2 hours). Every
customer view asks :func:`current_customer` or is decorated with :func:`customer_required`;
a session whose link was revoked, or whose customer was erased, ends at its next request.

Views of other domains under ``/my`` (evidence, offers, payout details, claims) use the same
two functions: ``from portal.customers.session import current_customer, customer_required``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar

from flask import current_app, g, redirect, request, url_for
from itsdangerous import BadSignature, URLSafeTimedSerializer

from portal.audit.models import customer_actor
from portal.config import LOCALES
from portal.customers import links
from portal.customers.models import Customer
from portal.extensions import db

COOKIE = "aftercare_my"
COOKIE_PATH = "/my"
SALT = "aftercare.customer-session"
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class CustomerSession:
    customer_id: int
    link_id: int
    locale: str
    started: int  # when the link was followed (epoch seconds): a language switch keeps it


def _serializer() -> URLSafeTimedSerializer:
    secrets = [*current_app.config.get("SECRET_KEY_FALLBACKS", []),
               current_app.config["SECRET_KEY"]]
    return URLSafeTimedSerializer(secrets, salt=SALT)


def _max_age() -> int:
    return int(current_app.config["CUSTOMER_SESSION_MINUTES"]) * 60


def read_cookie() -> CustomerSession | None:
    """The request's customer session as signed, without asking the database (None when
    absent, forged or older than its lifetime)."""
    if "customer_session" in g:
        return g.customer_session
    raw = request.cookies.get(COOKIE)
    found = None
    if raw:
        try:
            data = _serializer().loads(raw, max_age=_max_age())
            found = CustomerSession(int(data["c"]), int(data["l"]),
                                    data["lang"] if data.get("lang") in LOCALES else "zh_CN",
                                    int(data["t"]))
        except (BadSignature, KeyError, TypeError, ValueError):
            found = None
        if found is not None and time.time() - found.started > _max_age():
            found = None
    g.customer_session = found
    return found


def session_locale() -> str | None:
    """The language of the customer's page (a locale source for ``portal.i18n``)."""
    if not request.path.startswith(COOKIE_PATH):
        return None
    found = read_cookie()
    return found.locale if found else None


def current_customer() -> Customer | None:
    """The customer of this request's session, or None (no cookie, forged, expired, its link
    revoked, the customer erased). Asked once per request."""
    if "current_customer" in g:
        return g.current_customer
    found = read_cookie()
    customer = None
    if found is not None and links.session_link_valid(found.link_id, found.customer_id):
        customer = db.session.get(Customer, found.customer_id)
    g.current_customer = customer
    if customer is not None:  # what they do in this request is audited as theirs
        g.audit_actor_label = customer_actor(customer.id)
    return customer


def customer_required(view: F) -> F:
    """For every customer view: without a valid session, the page that says how to get a
    new link (``my.check``), never a staff sign-in. Use below ``@access(PUBLIC)``."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if current_customer() is None:
            return redirect(url_for("my.check", again=1))
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def start(response: Any, customer: Customer, link_id: int, locale: str | None = None, *,
          started: int | None = None) -> Any:
    """Set the session cookie on ``response`` for ``customer``, opened with ``link_id`` (at
    ``started``, default now: the session ends ``CUSTOMER_SESSION_MINUTES`` after it)."""
    locale = locale if locale in LOCALES else (customer.locale if customer.locale in LOCALES
                                               else "zh_CN")
    started = int(time.time()) if started is None else started
    value = _serializer().dumps({"c": customer.id, "l": link_id, "lang": locale, "t": started})
    remaining = max(0, _max_age() - (int(time.time()) - started))
    response.set_cookie(COOKIE, value, max_age=remaining, path=COOKIE_PATH, httponly=True,
                        samesite="Lax", secure=current_app.config["PORTAL_ENV"] == "production")
    return response


def end(response: Any) -> Any:
    response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="Lax",
                           secure=current_app.config["PORTAL_ENV"] == "production")
    return response
