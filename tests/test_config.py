"""Configuration from the environment, with safe defaults."""

from __future__ import annotations

import os
import stat

import pytest

from portal import config
from portal.accounts import Role


def test_production_refuses_to_start_without_a_secret_key(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("PORTAL_ENV", "production")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(config.ConfigError, match="SECRET_KEY is not set"):
        config.load(str(tmp_path))
    monkeypatch.setenv("SECRET_KEY", "x" * 40)
    monkeypatch.setenv("AUDIT_HMAC_KEY", "h" * 64)
    monkeypatch.setenv("AUDIT_SIGNING_KEY", "5" * 64)
    monkeypatch.setenv("ERASURE_KEY", "y" * 40)
    monkeypatch.setenv("PAYOUT_DETAILS_KEY", "6" * 64)
    monkeypatch.setenv("VERIFICATION_KEY", "v" * 40)
    loaded = config.load(str(tmp_path))
    assert loaded["SESSION_COOKIE_SECURE"] is True
    assert loaded["REMEMBER_COOKIE_SECURE"] is True


def test_production_refuses_to_start_without_an_erasure_key(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("PORTAL_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "x" * 40)
    monkeypatch.delenv("ERASURE_KEY", raising=False)
    with pytest.raises(config.ConfigError, match="ERASURE_KEY is not set"):
        config.load(str(tmp_path))
    assert not (tmp_path / "erasure_key").exists()


def test_development_key_is_generated_once_with_mode_0600(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("PORTAL_ENV", raising=False)
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.delenv("ERASURE_KEY", raising=False)
    first = config.load(str(tmp_path))
    second = config.load(str(tmp_path))
    for name in ("SECRET_KEY", "ERASURE_KEY"):
        assert first[name] == second[name] and len(first[name]) >= 64
        mode = stat.S_IMODE(os.stat(tmp_path / name.lower()).st_mode)
        assert mode == 0o600
    assert first["SECRET_KEY"] != first["ERASURE_KEY"]


def test_secret_key_fallbacks_come_from_the_environment(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("SECRET_KEY_FALLBACKS", raising=False)
    assert config.load(str(tmp_path))["SECRET_KEY_FALLBACKS"] == []
    monkeypatch.setenv("SECRET_KEY_FALLBACKS", " oldest-key, older-key ,")
    assert config.load(str(tmp_path))["SECRET_KEY_FALLBACKS"] == ["oldest-key", "older-key"]


def test_a_session_signed_with_a_former_key_still_works(monkeypatch, app_factory,
                                                        users) -> None:
    from tests.conftest import PASSWORD

    monkeypatch.delenv("SECRET_KEY_FALLBACKS", raising=False)
    before = app_factory().test_client()
    before.post("/login", data={"email": users[Role.AGENT].email, "password": PASSWORD})
    cookie = before.get_cookie("session").value
    monkeypatch.setenv("SECRET_KEY_FALLBACKS", "test-secret")  # the tests' key, now retired
    after = app_factory(SECRET_KEY="the-new-key").test_client()
    after.set_cookie("session", cookie)
    assert after.get("/dashboard").status_code == 200
    retired = app_factory(SECRET_KEY="the-new-key", SECRET_KEY_FALLBACKS=[]).test_client()
    retired.set_cookie("session", cookie)
    assert retired.get("/dashboard").status_code == 302  # without the fallback: signed out


def test_defaults_are_embedded(monkeypatch, tmp_path) -> None:
    for name in ("DATABASE_URL", "REDIS_URL", "PORTAL_ENV", "PORTAL_DEFAULT_LOCALE"):
        monkeypatch.delenv(name, raising=False)
    loaded = config.load(str(tmp_path))
    assert loaded["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'aftercare.db'}"
    assert loaded["REDIS_URL"] == f"unix://{tmp_path / 'redis.sock'}"
    assert loaded["SESSION_COOKIE_HTTPONLY"] and loaded["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert loaded["SESSION_COOKIE_SECURE"] is False
    assert loaded["BABEL_DEFAULT_LOCALE"] == "zh_CN"


def test_environment_overrides(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db:5432/aftercare")
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/2")
    monkeypatch.setenv("SMTP_HOST", "mail.internal")
    monkeypatch.setenv("SMTP_PORT", "2525")
    monkeypatch.setenv("PORTAL_BASE_URL", "https://aftercare.example/")
    monkeypatch.setenv("PORTAL_DEFAULT_LOCALE", "en")
    loaded = config.load(str(tmp_path))
    assert loaded["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@db:5432/aftercare"
    assert loaded["RQ_CONNECTION"] == "redis://cache:6379/2"
    assert (loaded["SMTP_HOST"], loaded["SMTP_PORT"]) == ("mail.internal", 2525)
    assert loaded["PORTAL_BASE_URL"] == "https://aftercare.example"
    assert loaded["BABEL_DEFAULT_LOCALE"] == "en"


def test_unknown_default_locale_is_refused(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("PORTAL_DEFAULT_LOCALE", "fr")
    with pytest.raises(config.ConfigError, match="PORTAL_DEFAULT_LOCALE"):
        config.load(str(tmp_path))


def test_production_refuses_to_start_without_the_audit_keys(monkeypatch, tmp_path) -> None:
    """The keys that make tampering evident are never made up silently in production."""
    monkeypatch.setenv("PORTAL_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "x" * 40)
    monkeypatch.setenv("ERASURE_KEY", "y" * 40)
    monkeypatch.setenv("PAYOUT_DETAILS_KEY", "6" * 64)
    monkeypatch.setenv("VERIFICATION_KEY", "v" * 40)
    for name in ("AUDIT_HMAC_KEY", "AUDIT_SIGNING_KEY"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(config.ConfigError, match="AUDIT_HMAC_KEY is not set"):
        config.load(str(tmp_path))
    monkeypatch.setenv("AUDIT_HMAC_KEY", "h" * 64)
    with pytest.raises(config.ConfigError, match="AUDIT_SIGNING_KEY is not set"):
        config.load(str(tmp_path))
    # A key file under instance/ (mode 0600) will do as well as the environment.
    (tmp_path / "audit_signing_key").write_text("ab" * 32)
    assert config.load(str(tmp_path))["AUDIT_SIGNING_KEY"] == "ab" * 32
    monkeypatch.setenv("AUDIT_SIGNING_KEY", "not hex")
    with pytest.raises(config.ConfigError, match="32 bytes in hex"):
        config.load(str(tmp_path))


def test_development_audit_keys_are_created_once_outside_the_database(monkeypatch,
                                                                      tmp_path) -> None:
    monkeypatch.delenv("PORTAL_ENV", raising=False)
    for name in ("AUDIT_HMAC_KEY", "AUDIT_SIGNING_KEY"):
        monkeypatch.delenv(name, raising=False)
    first, second = config.load(str(tmp_path)), config.load(str(tmp_path))
    for name in ("AUDIT_HMAC_KEY", "AUDIT_SIGNING_KEY"):
        assert first[name] == second[name] and len(first[name]) == 64
        assert stat.S_IMODE(os.stat(tmp_path / name.lower()).st_mode) == 0o600


def test_trusted_proxies_default_to_none(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("PORTAL_TRUSTED_PROXIES", raising=False)
    assert config.load(str(tmp_path))["PORTAL_TRUSTED_PROXIES"] == 0
    monkeypatch.setenv("PORTAL_TRUSTED_PROXIES", "1")
    assert config.load(str(tmp_path))["PORTAL_TRUSTED_PROXIES"] == 1
    monkeypatch.setenv("PORTAL_TRUSTED_PROXIES", "yes")
    with pytest.raises(config.ConfigError, match="PORTAL_TRUSTED_PROXIES"):
        config.load(str(tmp_path))


def test_production_refuses_to_start_without_the_payout_details_key(monkeypatch,
                                                                    tmp_path) -> None:
    """Customers' bank details are sealed with a key outside the database, never made up
    silently in production, and it must be an AES-256 key."""
    monkeypatch.setenv("PORTAL_ENV", "production")
    for name, value in (("SECRET_KEY", "x" * 40), ("ERASURE_KEY", "y" * 40),
                        ("AUDIT_HMAC_KEY", "h" * 64), ("AUDIT_SIGNING_KEY", "5" * 64),
                        ("VERIFICATION_KEY", "v" * 40)):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("PAYOUT_DETAILS_KEY", raising=False)
    with pytest.raises(config.ConfigError, match="PAYOUT_DETAILS_KEY is not set"):
        config.load(str(tmp_path))
    (tmp_path / "payout_details_key").write_text("cd" * 32)
    assert config.load(str(tmp_path))["PAYOUT_DETAILS_KEY"] == "cd" * 32
    monkeypatch.setenv("PAYOUT_DETAILS_KEY", "ab" * 16)
    with pytest.raises(config.ConfigError, match="PAYOUT_DETAILS_KEY must be 32 bytes"):
        config.load(str(tmp_path))


def test_production_refuses_to_start_without_a_verification_key(monkeypatch, tmp_path) -> None:
    """Verification codes are only unforgeable with a key nobody else has: never made up
    silently in production."""
    monkeypatch.setenv("PORTAL_ENV", "production")
    for name, value in (("SECRET_KEY", "x" * 40), ("ERASURE_KEY", "y" * 40),
                        ("AUDIT_HMAC_KEY", "h" * 64), ("AUDIT_SIGNING_KEY", "5" * 64),
                        ("PAYOUT_DETAILS_KEY", "6" * 64)):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("VERIFICATION_KEY", raising=False)
    with pytest.raises(config.ConfigError, match="VERIFICATION_KEY is not set"):
        config.load(str(tmp_path))
    (tmp_path / "verification_key").write_text("k" * 64)
    assert config.load(str(tmp_path))["VERIFICATION_KEY"] == "k" * 64
