"""Aftercare: the portal a company runs when it shuts down a business line or an incident
hits its customers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from portal import config as config_module
from portal.extensions import babel, csrf, db, htmx, limiter, login_manager, migrate, rq


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Application factory; ``config`` overrides what the environment gives
    (``INSTANCE_PATH`` moves the instance folder, as the tests do)."""
    config = dict(config or {})
    app = Flask(
        __name__,
        instance_path=config.pop("INSTANCE_PATH", None),
        instance_relative_config=True,
        template_folder="../templates",
        static_folder="../static",
    )
    app.config.from_mapping(config_module.load(app.instance_path))
    if config:
        app.config.update(config)
        if "REDIS_URL" in config and "RQ_CONNECTION" not in config:
            app.config["RQ_CONNECTION"] = config["REDIS_URL"]
    app.config.setdefault("RATELIMIT_STORAGE_URI",
                          config_module.limiter_storage(app.config["REDIS_URL"]))

    proxies = app.config["PORTAL_TRUSTED_PROXIES"]
    if proxies:
        # The client's address (sign-in limits, audit entries) and scheme as the proxies saw
        # them; with none trusted, a client's X-Forwarded-For is ignored.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(Path(app.root_path).parent / "migrations"))
    csrf.init_app(app)
    htmx.init_app(app)
    rq.init_app(app)
    login_manager.init_app(app)
    limiter.init_app(app)  # in Redis (RATELIMIT_STORAGE_URI above); see config for its limits

    from portal import i18n, logs, redirects, security, uow, web, wiring
    from portal.audit import cli as audit_cli
    from portal.audit import views as audit_views
    from portal.auth import cli as auth_cli
    from portal.auth import views as auth_views
    from portal.backups import cli as backup_cli
    from portal.cases import canned_views, evidence_views, offer_views, triage_views
    from portal.cases import views as case_views
    from portal.centre import views as centre_views
    from portal.comms import views as comms_views
    from portal.customers import views as customer_views
    from portal.events import views as event_views
    from portal.jobqueues import views as jobqueue_views
    from portal.letters import views as letter_views
    from portal.lifecycle import cli as lifecycle_cli
    from portal.lifecycle import views as lifecycle_views
    from portal.mailings import cli as mailing_cli
    from portal.mailings import views as mailing_views
    from portal.main import cli as main_cli
    from portal.main import views as main_views
    from portal.my import views as my_views
    from portal.notices import views as notice_views
    from portal.ops import views as ops_views
    from portal.payouts import result_views as payout_result_views
    from portal.payouts import views as payout_views
    from portal.postmortems import views as postmortem_views
    from portal.programmes import entitlement_views
    from portal.programmes import mail_views as programme_mail_views
    from portal.programmes import run_views as programme_run_views
    from portal.programmes import views as programme_views
    from portal.public import cache as public_cache
    from portal.public import cli as public_cli
    from portal.public import views as public_views
    from portal.signoffs import views as signoff_views
    from portal.subscriptions import views as subscription_views
    from portal.users import views as user_views

    logs.init_app(app)  # first: the request id exists before any other hook logs
    babel.init_app(app, locale_selector=i18n.select_locale, timezone_selector=i18n.select_timezone)
    i18n.init_app(app)
    redirects.init_app(app)
    security.init_app(app)
    web.init_app(app)
    uow.init_app(app)  # after web: decides on the status before a 422 reaches htmx as 200
    public_cache.init_app(app)
    wiring.connect()

    app.register_blueprint(main_views.bp)
    app.register_blueprint(ops_views.bp)
    app.register_blueprint(auth_views.bp)
    app.register_blueprint(user_views.bp)
    app.register_blueprint(jobqueue_views.bp)
    app.register_blueprint(audit_views.bp)
    app.register_blueprint(event_views.bp)
    app.register_blueprint(centre_views.bp)
    app.register_blueprint(comms_views.bp)
    app.register_blueprint(letter_views.bp)
    app.register_blueprint(notice_views.bp)
    app.register_blueprint(signoff_views.bp)
    app.register_blueprint(public_views.bp)
    app.register_blueprint(subscription_views.bp)
    app.register_blueprint(customer_views.bp)
    app.register_blueprint(entitlement_views.bp)
    app.register_blueprint(case_views.bp)
    app.register_blueprint(canned_views.bp)
    app.register_blueprint(offer_views.bp)
    app.register_blueprint(triage_views.bp)
    app.register_blueprint(evidence_views.bp)
    app.register_blueprint(mailing_views.bp)
    app.register_blueprint(postmortem_views.bp)
    app.register_blueprint(programme_views.bp)
    app.register_blueprint(lifecycle_views.bp)
    app.register_blueprint(my_views.bp)
    app.register_blueprint(programme_run_views.bp)
    app.register_blueprint(programme_mail_views.bp)
    app.register_blueprint(payout_views.bp)
    app.register_blueprint(payout_result_views.bp)

    app.cli.add_command(auth_cli.users_cli)
    app.cli.add_command(audit_cli.audit_cli)
    app.cli.add_command(main_cli.demo_cli)
    app.cli.add_command(main_cli.devserver)
    app.cli.add_command(main_cli.reconcile)
    app.cli.add_command(mailing_cli.mailings_cli)
    app.cli.add_command(lifecycle_cli.lifecycle_cli)
    app.cli.add_command(public_cli.public_cli)
    app.cli.add_command(backup_cli.backup)
    app.cli.add_command(backup_cli.restore)
    return app
