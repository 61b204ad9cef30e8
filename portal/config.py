"""Configuration read from the environment, with safe defaults for development."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

LOCALES = ("zh_CN", "en")
# The largest file an upload may carry, and the largest request (the file with its form
# fields and multipart envelope): Flask refuses a bigger request before reading it, and the
# shipped nginx (deploy/nginx-aftercare.conf, client_max_body_size) uses the same number.
MAX_UPLOAD_BYTES = 64 * 1024 * 1024
MAX_REQUEST_BYTES = MAX_UPLOAD_BYTES + 1024 * 1024
# The largest request to the customer page (/my): one 10 MB evidence file with its envelope.
MY_MAX_REQUEST_BYTES = 11 * 1024 * 1024


class ConfigError(RuntimeError):
    """The configuration cannot be used; the message says what to set."""


def _database_url(instance: Path) -> str:
    url = os.environ.get("DATABASE_URL", "").strip()
    if not url:
        return f"sqlite:///{instance / 'aftercare.db'}"
    # psycopg 3 is the driver we ship; accept the usual spellings.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _random_file(path: Path) -> None:
    """Create ``path`` (mode 0600) holding 32 random bytes in hex, unless it exists."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))


def _secret(name: str, instance: Path, production: bool) -> str:
    """A key kept outside the database: the environment variable ``name``, else the file
    instance/<name in lower case> (mode 0600), which development creates on first use and
    production must be given."""
    value = os.environ.get(name, "").strip()
    if value:
        return value
    path = instance / name.lower()
    if production and not path.exists():
        raise ConfigError(
            f"{name} is not set. In production Aftercare refuses to start without it: set "
            f"{name} (or write {path}, mode 0600) to a long random value, e.g. python "
            '-c "import secrets; print(secrets.token_hex(32))". Back it up: see README.')
    _random_file(path)
    return path.read_text().strip()


def _hex_key(name: str, purpose: str, instance: Path, production: bool) -> str:
    """A 32-byte key in hex kept outside the database (see ``_secret``); ``purpose`` says
    what it is for in the error."""
    key = _secret(name, instance, production)
    try:
        valid = len(bytes.fromhex(key)) == 32
    except ValueError:
        valid = False
    if not valid:
        raise ConfigError(f"{name} must be 32 bytes in hex (64 characters): {purpose}.")
    return key


def _audit_signing_key(instance: Path, production: bool) -> str:
    return _hex_key("AUDIT_SIGNING_KEY",
                    "the seed of the Ed25519 key that signs audit checkpoints",
                    instance, production)


def _payout_details_key(instance: Path, production: bool) -> str:
    return _hex_key("PAYOUT_DETAILS_KEY", "the AES-256-GCM key of customers' payout details",
                    instance, production)


def _trusted_proxies() -> int:
    raw = os.environ.get("PORTAL_TRUSTED_PROXIES", "0").strip() or "0"
    if not raw.isdigit():
        raise ConfigError("PORTAL_TRUSTED_PROXIES must be a whole number (1 behind the shipped "
                          "nginx, 0 when clients connect to the portal directly).")
    return int(raw)


def load(instance_path: str) -> dict[str, Any]:
    """Build the Flask config mapping from the environment."""
    instance = Path(instance_path)
    env = os.environ.get("PORTAL_ENV", "development").strip().lower()
    production = env == "production"
    redis_url = os.environ.get("REDIS_URL", "").strip() or f"unix://{instance / 'redis.sock'}"
    default_locale = os.environ.get("PORTAL_DEFAULT_LOCALE", "zh_CN").replace("-", "_")
    if default_locale not in LOCALES:
        raise ConfigError(f"PORTAL_DEFAULT_LOCALE must be one of {', '.join(LOCALES)}.")
    return {
        "PORTAL_ENV": env,
        # Reverse proxies in front of the portal whose X-Forwarded-For/-Proto are believed.
        "PORTAL_TRUSTED_PROXIES": _trusted_proxies(),
        "SECRET_KEY": _secret("SECRET_KEY", instance, production),
        # Former SECRET_KEYs, still accepted (signed links already sent, sessions) after a
        # rotation; comma separated, oldest first.
        "SECRET_KEY_FALLBACKS": [key.strip() for key in
                                 os.environ.get("SECRET_KEY_FALLBACKS", "").split(",")
                                 if key.strip()],
        # Keys the pseudonyms of erased customers: never rotated with SECRET_KEY, so the same
        # erased reference keeps the same pseudonym.
        "ERASURE_KEY": _secret("ERASURE_KEY", instance, production),
        # Kept outside the database: the key of every audit entry's HMAC, and the seed of the
        # Ed25519 key that signs checkpoints of the chain (see README, "Audit keys").
        "AUDIT_HMAC_KEY": _secret("AUDIT_HMAC_KEY", instance, production),
        "AUDIT_SIGNING_KEY": _audit_signing_key(instance, production),
        # Keys the verification codes on notices, mails and PDFs (portal/verification.py);
        # issued codes are stored, so rotating it only changes codes issued afterwards.
        "VERIFICATION_KEY": _secret("VERIFICATION_KEY", instance, production),
        "AUDIT_CHECKPOINT_FILE": str(instance / "audit-checkpoints.jsonl"),
        # Kept outside the database: the AES-256-GCM key that seals customers' bank details
        # (see README, "Payout details"). Losing it loses the stored details; back it up.
        "PAYOUT_DETAILS_KEY": _payout_details_key(instance, production),
        # The account payout batches are paid from, as the pain.001 files name it (an IBAN
        # or the bank's account number; the BIC when the bank wants one). Empty in
        # production until set: a pain.001 file then fails with the reason.
        "PAYOUT_DEBTOR_NAME": os.environ.get("PAYOUT_DEBTOR_NAME", "").strip(),
        "PAYOUT_DEBTOR_ACCOUNT": os.environ.get(
            "PAYOUT_DEBTOR_ACCOUNT", "" if production else "110060149018000000001").strip(),
        "PAYOUT_DEBTOR_BIC": os.environ.get("PAYOUT_DEBTOR_BIC", "").strip(),
        # Bank profiles of the payout CSV beyond the built-in ones (portal/payouts/profiles.py).
        "PAYOUT_CSV_PROFILES": {},
        "SQLALCHEMY_DATABASE_URI": _database_url(instance),
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "REDIS_URL": redis_url,
        "RQ_CONNECTION": redis_url,
        # "mail" is worked by `flask --app portal mailings worker` (jobs in-process, no fork).
        "RQ_QUEUES": ["default", "mail"],
        "RQ_ASYNC": True,
        # Operations (portal/ops, portal/logs.py; README "Operations"): the bearer token
        # Prometheus sends to /metrics (empty: /metrics answers 404), and the log format
        # ("json": one JSON object a line; "text"; empty: json in production, else text).
        "METRICS_TOKEN": os.environ.get("METRICS_TOKEN", "").strip(),
        "LOG_FORMAT": os.environ.get("LOG_FORMAT", "").strip().lower(),
        # The static snapshot of the public site that nginx serves (portal/public/snapshot.py);
        # empty: none is written.
        "PUBLIC_SNAPSHOT_DIR": os.environ.get("PUBLIC_SNAPSHOT_DIR",
                                              str(instance / "public-snapshot")).strip(),
        "PORTAL_BASE_URL": os.environ.get("PORTAL_BASE_URL", "http://127.0.0.1:5000").rstrip("/"),
        "PORTAL_COMPANY_NAME": os.environ.get("PORTAL_COMPANY_NAME", "Aftercare Demo Co."),
        "PORTAL_CONTACT_PHONE": os.environ.get("PORTAL_CONTACT_PHONE", "400-800-1234"),
        "PORTAL_CONTACT_EMAIL": os.environ.get("PORTAL_CONTACT_EMAIL", "support@example.com"),
        "SMTP_HOST": os.environ.get("SMTP_HOST", "127.0.0.1"),
        "SMTP_PORT": int(os.environ.get("SMTP_PORT", "8025")),
        "SMTP_USERNAME": os.environ.get("SMTP_USERNAME", ""),
        "SMTP_PASSWORD": os.environ.get("SMTP_PASSWORD", ""),
        "SMTP_STARTTLS": os.environ.get("SMTP_STARTTLS", "0") == "1",
        "MAIL_FROM": os.environ.get("MAIL_FROM", "Aftercare <noreply@aftercare.invalid>"),
        "BABEL_DEFAULT_LOCALE": default_locale,
        "BABEL_DEFAULT_TIMEZONE": os.environ.get("PORTAL_TIMEZONE", "Asia/Shanghai"),
        "BABEL_TRANSLATION_DIRECTORIES": str(Path(__file__).parent / "translations"),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": production,
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SECURE": production,
        "WTF_CSRF_TIME_LIMIT": None,
        "MAX_CONTENT_LENGTH": MAX_REQUEST_BYTES,
        "PASSWORD_METHOD": "scrypt",
        "LOGIN_MAX_FAILURES": 5,
        "LOGIN_LOCKOUT_MINUTES": 15,
        "LOGIN_IP_MAX_FAILURES": 30,
        "LOGIN_IP_WINDOW_MINUTES": 15,
        "AUDIT_PAGE_SIZE": 50,
        # The staff case list counts exactly up to this many matches and estimates above it
        # (an exact count of a million rows is most of a request's time); "count exactly"
        # asks for the exact figure.
        "CASE_COUNT_THRESHOLD": 10_000,
        # Mailings: recipients per RQ job, the send rate across all workers (0: no limit),
        # retries of temporary SMTP failures (back-off base, 4×base, 16×base …; waits up to
        # the inline limit happen inside the job, longer ones are queued again by the
        # reconciler), and the lease after which a silent job's worker is presumed dead.
        # Case replies use the same attempts, back-off and lease.
        "MAILING_CHUNK_SIZE": int(os.environ.get("MAILING_CHUNK_SIZE", "200")),
        "MAILING_RATE_PER_SECOND": int(os.environ.get("MAILING_RATE_PER_SECOND", "500")),
        "MAILING_MAX_ATTEMPTS": 5,
        "MAILING_RETRY_BASE_SECONDS": 30.0,
        "MAILING_RETRY_INLINE_SECONDS": 10.0,
        "MAILING_LEASE_SECONDS": float(os.environ.get("MAILING_LEASE_SECONDS", "120")),
        "MAILING_JOB_TIMEOUT": 3600,
        # The most time one text with placeholders (a mailing's greeting, a canned reply) may
        # take to fill in (see portal/placeholders.py).
        "MAILING_GREETING_SECONDS": 0.5,
        # Opt-in programmes: reminders this many days before the deadline (comma-separated),
        # each sent once to the members who have not accepted yet.
        "PROGRAMME_REMINDER_DAYS": os.environ.get("PROGRAMME_REMINDER_DAYS", "7,1"),
        # Sign-off requests wait this long before legal is e-mailed, so that several requests
        # in a few minutes reach each reviewer as one digest; other staff e-mails go at once
        # (and take along whatever waits for the same person).
        "NOTIFY_DIGEST_SECONDS": float(os.environ.get("NOTIFY_DIGEST_SECONDS", "180")),
        # Public claims from a notice page: per client IP and per e-mail address
        # (Flask-Limiter's notation; counted in Redis, see ``limiter_storage``).
        "CLAIM_LIMIT_PER_IP": os.environ.get("CLAIM_LIMIT_PER_IP", "10 per hour"),
        "CLAIM_LIMIT_PER_ADDRESS": os.environ.get("CLAIM_LIMIT_PER_ADDRESS", "3 per hour"),
        # The customer page (/my): how long the session a link opens lasts, the largest
        # request, and the "check my case" form: the time every answer takes (found or not,
        # so the timing tells nothing) and its limits per client address and per e-mail
        # address (Flask-Limiter on REDIS_URL, see portal/__init__.py).
        "CUSTOMER_SESSION_MINUTES": 120,
        "MY_MAX_REQUEST_BYTES": MY_MAX_REQUEST_BYTES,
        "MY_CHECK_SECONDS": float(os.environ.get("MY_CHECK_SECONDS", "0.5")),
        "MY_CHECK_LIMIT_PER_IP": os.environ.get("MY_CHECK_LIMIT_PER_IP", "10/minute;50/day"),
        "MY_CHECK_LIMIT_PER_ADDRESS": os.environ.get("MY_CHECK_LIMIT_PER_ADDRESS",
                                                     "3/hour;10/day"),
        "MY_REPLY_LIMIT": os.environ.get("MY_REPLY_LIMIT", "20/hour"),
        # "Is this really from us?" (/verify): lookups per client address, and where a reader
        # reports a message that is not ours (an e-mail address or an https:// address).
        "VERIFY_LIMIT_PER_IP": os.environ.get("VERIFY_LIMIT_PER_IP", "30/minute;300/day"),
        "VERIFY_REPORT_ADDRESS": os.environ.get(
            "VERIFY_REPORT_ADDRESS",
            os.environ.get("PORTAL_CONTACT_EMAIL", "support@example.com")).strip(),
        # Public subscriptions (portal/subscriptions): how long a confirmation link works,
        # a one-time code's life and attempts, how long an ended subscription is kept (its
        # one-click link then still answers), the time every "subscribe" answer takes, and
        # the limits per client address and per e-mail address.
        "SUBSCRIPTION_CONFIRM_HOURS": int(os.environ.get("SUBSCRIPTION_CONFIRM_HOURS", "48")),
        "SUBSCRIPTION_CODE_MINUTES": 15,
        "SUBSCRIPTION_CODE_ATTEMPTS": 5,
        "SUBSCRIPTION_KEEP_UNSUBSCRIBED_DAYS": 30,
        "SUBSCRIPTION_ANSWER_SECONDS": float(os.environ.get("SUBSCRIPTION_ANSWER_SECONDS",
                                                            "0.3")),
        "SUBSCRIBE_LIMIT_PER_IP": os.environ.get("SUBSCRIBE_LIMIT_PER_IP", "10/hour;30/day"),
        "SUBSCRIBE_LIMIT_PER_ADDRESS": os.environ.get("SUBSCRIBE_LIMIT_PER_ADDRESS",
                                                      "3/hour;6/day"),
        "SUBSCRIPTION_CODE_LIMIT_PER_IP": os.environ.get("SUBSCRIPTION_CODE_LIMIT_PER_IP",
                                                         "10/hour"),
        "RATELIMIT_KEY_PREFIX": "aftercare-limit",
        "RATELIMIT_HEADERS_ENABLED": False,
        # Redis down: the limits are kept in memory per process rather than failing the page.
        "RATELIMIT_SWALLOW_ERRORS": True,
        "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
    }


def instance_folder(name: str, setting: str | None = None) -> Path:
    """The instance's folder ``name`` (or where the ``setting`` puts it), created if missing."""
    from flask import current_app

    path = Path((setting and current_app.config.get(setting))
                or Path(current_app.instance_path) / name)
    path.mkdir(parents=True, exist_ok=True)
    return path


def limiter_storage(redis_url: str) -> str:
    """Flask-Limiter's storage URI for the portal's Redis (``limits`` spells a unix socket
    ``redis+unix://``)."""
    return "redis+unix://" + redis_url.removeprefix("unix://") if redis_url.startswith(
        "unix://") else redis_url
