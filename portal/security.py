"""Who may reach which endpoint, and the HTTP headers every response carries.

Every view declares its audience with :func:`access`. An endpoint without a declaration is
refused (deny by default) and fails the test that walks ``app.url_map``. Templates and
services ask :func:`can` instead of comparing roles, so a button shows exactly when the
request behind it would be let in; ``access(..., when=…)`` adds the object-level rule (a
status, four eyes) that the endpoint's service also checks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Flask, abort, current_app, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from portal.accounts import Role
from portal.errors import Refusal, attempt_refused
from portal.extensions import htmx, login_manager
from portal.i18n import N_, term
from portal.uow import SAFE_METHODS

F = TypeVar("F", bound=Callable[..., Any])
# An object-level rule: may this user act on this object now (its status, who made it)?
ObjectRule = Callable[[Any, Any], bool]

PUBLIC = "public"
STAFF = "staff"

# Endpoints a user who must change their password may still reach.
PASSWORD_CHANGE_ENDPOINTS = {"auth.change_password", "auth.logout", "static", "main.set_language"}

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


@dataclass(frozen=True)
class AccessRule:
    """``public`` lets anyone in; otherwise a signed-in staff member whose role is in
    ``roles`` (``None`` meaning any staff role)."""

    public: bool = False
    roles: frozenset[Role] | None = None
    when: ObjectRule | None = None

    def allows(self, role: Role | None) -> bool:
        if self.public:
            return True
        if role is None:
            return False
        return self.roles is None or role in self.roles

    def describe(self) -> str:
        if self.public:
            return PUBLIC
        if self.roles is None:
            return STAFF
        return ",".join(sorted(r.value for r in self.roles))


def access(*audience: str | Role, when: ObjectRule | None = None) -> Callable[[F], F]:
    """Declare who may reach a view: ``access(PUBLIC)``, ``access(STAFF)`` or
    ``access(Role.ADMIN, Role.LEGAL)``; ``when(user, obj)`` is the rule on the object the
    view acts on, asked by :func:`can` (the view's service enforces the same rule)."""
    if not audience:
        raise ValueError("access() needs PUBLIC, STAFF or at least one role")
    if audience == (PUBLIC,):
        rule = AccessRule(public=True, when=when)
    elif audience == (STAFF,):
        rule = AccessRule(when=when)
    else:
        rule = AccessRule(roles=frozenset(Role(a) for a in audience), when=when)

    def decorate(view: F) -> F:
        view.access_rule = rule  # type: ignore[attr-defined]
        return view

    return decorate


def rule_for(app: Flask, endpoint: str) -> AccessRule | None:
    view = app.view_functions.get(endpoint)
    return getattr(view, "access_rule", None)


def can(endpoint: str, obj: Any = None) -> bool:
    """Whether the current user may use ``endpoint`` (and, given ``obj``, act on it now):
    the declaration of :func:`access` on the view, never a role list of its own."""
    rule = rule_for(current_app, endpoint)
    if rule is None:
        return False
    if not rule.public and not (current_user.is_authenticated
                                and rule.allows(current_user.role)):
        return False
    if obj is not None and rule.when is not None:
        return rule.when(current_user, obj)
    return True


def who_can(endpoint: str) -> str:
    """The roles ``endpoint`` admits, named in the reader's language (for the line a page
    shows where it hides a button: "Only Admin / incident lead can open an event")."""
    rule = rule_for(current_app, endpoint)
    if rule is None:
        return ""
    roles = list(Role) if rule.roles is None else [r for r in Role if r in rule.roles]
    return _(", ").join(role.label for role in roles)


def _enforce_access() -> Any:
    from flask import current_app

    if request.endpoint is None:  # routing failed; the 404/405 handler answers
        return None
    rule = rule_for(current_app, request.endpoint)
    if rule is None:
        abort(403)
    if rule.public:
        return None
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if current_user.must_change_password and request.endpoint not in PASSWORD_CHANGE_ENDPOINTS:
        return redirect(url_for("auth.change_password"))
    if not rule.allows(current_user.role):
        if request.method not in SAFE_METHODS:
            _tell_refused_change(request.endpoint)
        abort(403)
    return None


def _tell_refused_change(endpoint: str) -> None:
    """A change the user's role does not allow (a decision by a non-lawyer, a crafted form):
    an attempt the audit trail keeps."""
    role = str(current_user.role)
    args = {k: str(v) for k, v in (request.view_args or {}).items()}
    attempt_refused.send(Refusal(
        "forbidden", action="access.refused", subject_type="endpoint", subject_id=endpoint,
        summary=N_("%(method)s %(endpoint)s refused to the %(role)s role",
                   method=request.method, endpoint=endpoint, role=term("role", role)),
        details={"method": request.method, "endpoint": endpoint, "args": args, "role": role},
        status=403))


SECURITY_HEADERS = [
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
]


def _security_headers(response: Any) -> Any:
    headers = response.headers
    if request.blueprint == "public":
        if "Content-Security-Policy" not in headers:  # cached pages carry them prebuilt
            headers.extend(SECURITY_HEADERS)
        return response
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    if request.endpoint == "static":
        return response  # assets set their own caching headers
    headers.setdefault("Cache-Control", "no-store")
    response.vary.add("Cookie")
    if htmx:
        response.vary.add("HX-Request")
    return response


def init_app(app: Flask) -> None:
    static_view = app.view_functions["static"]

    @access(PUBLIC)
    def static(filename: str) -> Any:
        return static_view(filename=filename)

    app.view_functions["static"] = static
    app.jinja_env.globals["can"] = can
    app.jinja_env.globals["who_can"] = who_can
    app.before_request(_enforce_access)
    app.after_request(_security_headers)
