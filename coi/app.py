"""The Flask app. `create_app` only wires things up: it never
migrates a database, calls the network or starts a scheduler."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask_wtf import CSRFProtect

from coi import auth, config, logs, problems, ratelimits, security, templating
from coi.api.v1 import blueprint as api_v1
from coi.cli import cli
from coi.config import signing_key_from
from coi.converters import CONVERTERS
from coi.core.clock import SystemClock
from coi.core.phi import PhiCipher
from coi.db import close_request_session, make_engine
from coi.handlers import refuse_nul, upload_limit
from coi.labels.decoders import log_availability
from coi.services.keys import Signer
from coi.version import __version__
from coi.views import account, admin, alarms, cases, dashboard, health, home, labels, login, scan, shipments
from coi.views import metrics as metrics_view

csrf = CSRFProtect()


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__, instance_relative_config=True)
    app.config.update(config.load(app.instance_path, overrides))
    app.config["VERSION"] = __version__
    # Here, not in wsgi.py: the scheduler and the `flask coi` commands make the app too.
    logs.configure(app.config["LOG_FORMAT"], app.config["LOG_LEVEL"])

    app.extensions["coi.engine"] = make_engine(app.config["DATABASE_URL"])
    app.extensions["coi.clock"] = app.config.pop("CLOCK", None) or SystemClock()
    app.extensions["coi.phi"] = PhiCipher(app.config["PHI_KEYS"], app.config["PHI_INDEX_KEY"])
    app.extensions["coi.signer"] = Signer(signing_key_from(app.config["INSTALLATION_SIGNING_KEY"]),
                                          app.config["LABEL_VERIFY_BASE_URL"])
    app.extensions["coi.profiles"] = config.temperature_profiles(app.config["TEMPERATURE_PROFILES"])
    app.extensions["coi.alerting"] = config.alerting_settings(app.config)
    app.teardown_appcontext(close_request_session)

    app.url_map.converters.update(CONVERTERS)  # before the blueprints' rules are made
    for module in (login, account, home, cases, labels, admin, health, scan, shipments, alarms, dashboard,
                   metrics_view):
        app.register_blueprint(module.blueprint)
    app.register_blueprint(api_v1)
    logs.install(app)  # first: whatever the hooks below log carries the request id
    metrics_view.install(app)
    app.before_request(upload_limit)
    app.before_request(refuse_nul)
    # CSRF is checked by coi.auth once the login is known, so that a form sent after its
    # session ended is told so (and kept), not refused as an expired form.
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False
    csrf.init_app(app)
    csrf.exempt(api_v1)  # machines authenticate with bearer tokens, not cookies
    auth.install(app)
    ratelimits.install(app)  # after auth: the per-token limit knows the token
    problems.install(app)
    templating.install(app)
    security.install(app)
    app.cli.add_command(cli)
    log_availability()
    return app
