"""Staff pages of the postmortems domain."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("postmortems", __name__, url_prefix="/postmortems")
