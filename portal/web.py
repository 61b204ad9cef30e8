"""Error pages, the sign-in gate's answers and template helpers shared by every page."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from flask import (
    Flask,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface
from flask.typing import ResponseReturnValue
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter, Map

from portal import accounts, uow
from portal.errors import Refusal, RuleViolation, attempt_refused
from portal.extensions import htmx, login_manager
from portal.imports import too_large
from portal.models import PdfStatus

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])

ERROR_TITLES = {
    400: _l("Bad request"),
    403: _l("Not allowed"),
    404: _l("Page not found"),
    405: _l("Method not allowed"),
    413: _l("File too large"),
    429: _l("Too many requests"),
    500: _l("Something went wrong"),
}
ERROR_TEXTS = {
    400: _l("The request could not be understood. Reload the page and try again."),
    403: _l("Your role does not allow this. Ask an admin if you think it should."),
    404: _l("There is nothing at this address."),
    405: _l("This address does not accept that kind of request."),
    429: _l("Too many attempts. Wait a few minutes and try again."),
    500: _l("The error has been logged and nothing was saved. Try again in a moment."),
}


# Row ids are INTEGER columns (PostgreSQL's int4). A larger number names no row, and handed to
# the database it overflows (SQLite's and psycopg's 64-bit integers) into a 500.
MAX_DATABASE_INT = 2**31 - 1


def database_int(value: str) -> int:
    """``type=`` for ``request.args.get`` / ``request.form.get``: a whole number from 0 to
    MAX_DATABASE_INT; anything else raises ValueError, so ``get`` answers its default."""
    number = int(value)
    if not 0 <= number <= MAX_DATABASE_INT:
        raise ValueError(f"{value!r} is out of range")
    return number


def database_ints(values: Iterable[str]) -> list[int]:
    """The values that are :func:`database_int` numbers, in order; the others are dropped."""
    found = []
    for value in values:
        try:
            found.append(database_int(value))
        except ValueError:
            continue
    return found


class DatabaseIntConverter(IntegerConverter):
    """``<int:…>`` in every route: an id beyond MAX_DATABASE_INT is a 404 (no such row)."""

    def __init__(self, map: Map, fixed_digits: int = 0, min: int | None = 0,
                 max: int | None = MAX_DATABASE_INT, signed: bool = False) -> None:
        super().__init__(map, fixed_digits, min, max, signed)


def limit_request(max_bytes: int, too_large_text: Callable[[], str]) -> Callable[[F], F]:
    """Give a view a request-size limit of its own, below ``MAX_CONTENT_LENGTH`` (an upload
    of evidence, say): a bigger body is refused before it is read, with a 413 page saying
    ``too_large_text()`` in the reader's language."""

    def decorate(view: F) -> F:
        view.request_limit = (max_bytes, too_large_text)  # type: ignore[attr-defined]
        return view

    return decorate


def _view_limit() -> tuple[int, Callable[[], str]] | None:
    view = current_app.view_functions.get(request.endpoint or "")
    return getattr(view, "request_limit", None)


def wants_partial(target: str | None = None) -> bool:
    """An htmx swap (not a boosted navigation), optionally aimed at element ``target``."""
    if not htmx or htmx.boosted:
        return False
    return target is None or htmx.target == target


def show_error(form: Any, err: Any) -> None:
    """Put a service's RuleViolation next to its form field, or flash it when it names none."""
    field = getattr(form, err.field, None) if err.field else None
    if field is not None:
        field.errors = [*field.errors, err.message]
    else:
        flash(err.message, "error")


def roll_back(err: RuleViolation) -> None:
    """A service refused: roll back the request's work (a rule may be broken halfway through);
    a :class:`Refusal` is then told to the audit trail, which keeps it in a transaction of
    its own."""
    uow.rollback()
    if isinstance(err, Refusal):
        attempt_refused.send(err)


def refuse(err: RuleViolation, form: Any = None) -> None:
    """:func:`roll_back`, then show why with :func:`show_error`. The view answers 422 (htmx
    gets 200, see ``form_errors_reach_htmx``), a refusal's status, or redirects."""
    roll_back(err)
    show_error(form, err)


def render_error(code: int, text: object | None = None) -> ResponseReturnValue:
    title = ERROR_TITLES.get(code, ERROR_TITLES[500])
    body = text or ERROR_TEXTS.get(code, ERROR_TEXTS[500])
    # The customer page's errors are told in its own layout, without the staff header.
    template = "my/error.html" if request.path == "/my" or request.path.startswith("/my/") \
        else "errors/error.html"
    return render_template(template, code=code, title=title, text=body), code


def _unauthorized() -> ResponseReturnValue:
    flash(_l("Please sign in to continue."), "info")
    target = url_for("auth.login", next=request.full_path.rstrip("?"))
    if htmx:
        return "", 401, {"HX-Redirect": target}
    return redirect(target)


class SessionInterface(SecureCookieSessionInterface):
    """Signed-cookie sessions with two changes for the public site, which never uses the
    session: its responses get no cookie and no ``Vary: Cookie`` (so shared caches serve one
    copy per URL and language), and the signer is built once, not on every request."""

    _serializer: Any = None
    _serializer_key: Any = None

    def get_signing_serializer(self, app: Flask) -> Any:
        key = (app.secret_key, tuple(app.config["SECRET_KEY_FALLBACKS"] or ()))
        if self._serializer_key != key:
            self._serializer = super().get_signing_serializer(app)
            self._serializer_key = key
        return self._serializer

    def save_session(self, app: Flask, session: Any, response: Response) -> None:
        if request.blueprint == "public" and not session.modified:
            return
        super().save_session(app, session, response)


def init_app(app: Flask) -> None:
    """Before the blueprints are registered: their rules take the converter now set."""
    app.url_map.converters["int"] = DatabaseIntConverter
    app.jinja_env.globals["PdfStatus"] = PdfStatus
    app.session_interface = SessionInterface()
    login_manager.user_loader(accounts.load_user)
    login_manager.unauthorized_handler(_unauthorized)
    login_manager.session_protection = "basic"

    @app.url_value_preprocessor
    def apply_view_limit(_endpoint: str | None, _values: dict[str, Any] | None) -> None:
        """A view's own request limit (:func:`limit_request`), set before any before_request
        handler runs: CSRFProtect's reads the body, under the limit in force then."""
        limit = _view_limit()
        if limit is not None:
            request.max_content_length = limit[0]

    @app.errorhandler(CSRFError)
    def csrf_error(err: CSRFError) -> ResponseReturnValue:
        return render_error(
            400, _l("The form expired or was sent from elsewhere. Reload the page and try again.")
        )

    @app.errorhandler(HTTPException)
    def http_error(err: HTTPException) -> ResponseReturnValue:
        if err.code and err.code < 400:
            return err
        if err.code == 413:  # refused by the request limit before the body is read
            limit = _view_limit()
            return render_error(413, limit[1]() if limit else too_large())
        return render_error(err.code or 500)

    @app.after_request
    def form_errors_reach_htmx(response: Response) -> Response:
        """htmx swaps only 2xx answers, so a form answered 422 (its errors next to the fields)
        would show nothing in the browser: htmx gets it as 200, with the address bar left as
        it is; every other client still gets 422."""
        if response.status_code == 422 and request.headers.get("HX-Request") == "true":
            response.status_code = 200
            response.headers["HX-Push-Url"] = "false"
        return response

    @app.errorhandler(Exception)
    def server_error(err: Exception) -> ResponseReturnValue:
        log.exception("unhandled error on %s", request.path)
        uow.rollback()
        return render_error(500)
