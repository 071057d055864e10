"""Prior-authorization CDS Hooks service: `create_app()` is what gunicorn serves."""
from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import date
from typing import Any

from flask import Flask, jsonify
from flask_cors import CORS
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from . import db
from .audit_journal import AuditJournal, journal_directory
from .auth import FunctionJtiStore, JtiStore, init_auth
from .config import load_config
from .errors import PayloadTooLarge, ServiceError, StorageUnavailable
from .fact_cache import FactCache
from .feedback import bp as feedback_bp
from .fhir_api import bp as fhir_bp
from .hooks import bp as hooks_bp
from .json_codec import FastJSONProvider
from .logs import configure_logging, init_request_log
from .openapi import bp as openapi_bp
from .policies import load_policies
from .state import ServiceState

log = logging.getLogger("cds_service")

__all__ = ["create_app"]


class _ServiceFlask(Flask):
    json_provider_class = FastJSONProvider


def create_app(config: Mapping[str, Any] | None = None, *, jti_store: JtiStore | None = None) -> Flask:
    """Build the app: load and check every policy and the JWT issuers (bad ones stop start-up), then the routes.

    `jti_store` is where token ids are remembered against replay; the default is the database, so that every
    worker and instance agrees on what was seen.
    """
    settings = load_config(config)
    configure_logging()
    app = _ServiceFlask(__name__, instance_relative_config=True)
    app.config.update(settings)
    app.config["MAX_CONTENT_LENGTH"] = settings["CDS_MAX_BODY_BYTES"]
    app.json.sort_keys = False
    library = load_policies(settings["CDS_CARDS_DIR"])
    store = db.init_app(app)
    journal = _journal(store, app.config["CDS_DATABASE_URL"], settings["CDS_AUDIT_JOURNAL_DIR"])
    app.extensions["cds_service"] = ServiceState(
        library=library,
        fhir_timeout_s=float(settings["CDS_FHIR_TIMEOUT_S"]),
        public_base_url=settings["CDS_PUBLIC_BASE_URL"],
        today=date.fromisoformat(settings["CDS_TODAY"]) if settings.get("CDS_TODAY") else None,
        answers=_answers_lookup(store),
        facts=FactCache(settings["CDS_FACT_CACHE_SIZE"], int(settings["CDS_FACT_CACHE_MB"] * 1024 * 1024))
        if settings["CDS_FACT_CACHE_SIZE"] > 0 else None,
        journal=journal,
    )
    CORS(app, origins=settings["CDS_CORS_ORIGINS"], allow_headers=["Authorization", "Content-Type"],
         methods=["GET", "POST", "OPTIONS"])
    init_request_log(app)
    init_auth(app, settings, jti_store or FunctionJtiStore(store.remember_jti))
    app.register_blueprint(hooks_bp)
    app.register_blueprint(feedback_bp)
    app.register_blueprint(fhir_bp)
    app.register_blueprint(openapi_bp)
    _register_errors(app)

    @app.get("/healthz")
    def healthz():
        return jsonify({"status": "ok"})

    @app.get("/readyz")
    def readyz():
        not_ready = {"status": "not ready", "database": "unreachable"}
        if not store.ping():
            return jsonify(not_ready), 503
        body = {"status": "ready", "policies": sorted(library.policies), "database": "reachable"}
        if journal is not None:  # how far behind the tables are: lines wait there, they are not lost
            try:
                body["audit_journal"] = journal.backlog()
            except StorageUnavailable:
                return jsonify(not_ready), 503
        return jsonify(body)

    return app


def _journal(store: db.Storage, database_url: str, configured: str | None) -> AuditJournal | None:
    """The write-behind journal of hook calls, when there is to be one; reads of the audit settle it first."""
    directory = journal_directory(database_url, configured)
    if directory is None:
        return None
    journal = AuditJournal(directory, store)
    store.settle_audit = journal.settle
    try:
        journal.adopt_orphans()  # calls a worker that died had answered, written before this one answers any
    except StorageUnavailable:
        log.warning("audit journals of stopped workers not written yet: database unavailable",
                    extra={"event": "audit.journal_deferred"})
    return journal


def _answers_lookup(store: db.Storage):
    """Documentation answers for a hook call; with the database down the call goes on without them (every
    clause they would have answered stays unknown, never met)."""
    def lookup(patient_id: str, policies: list[str]):
        try:
            return store.answers_for(patient_id, policies)
        except StorageUnavailable:
            log.warning("documentation answers unavailable: database unreachable")
            return {}
    return lookup


def _outcome(error: ServiceError):
    return jsonify(error.outcome()), error.status


def _register_errors(app: Flask) -> None:
    app.register_error_handler(ServiceError, _outcome)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_exc):
        return _outcome(PayloadTooLarge(f"The request body is over the {app.config['MAX_CONTENT_LENGTH']} byte limit"))

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        body = {"resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "not-found" if exc.code == 404 else "exception",
                           "diagnostics": exc.description or exc.name}]}
        return jsonify(body), exc.code

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unhandled error", extra={"error": type(exc).__name__})
        body = {"resourceType": "OperationOutcome",
                "issue": [{"severity": "fatal", "code": "exception", "diagnostics": "Internal error"}]}
        return jsonify(body), 500
