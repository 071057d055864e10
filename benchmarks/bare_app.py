"""The floor: a Flask app whose only view parses the request JSON and answers no cards.

Served by the same gunicorn settings as the service, it is what the benchmark divides by: the cost of
HTTP, WSGI and JSON decoding of the same body, which no implementation of the service can avoid.
"""
from __future__ import annotations

from flask import Flask, jsonify, request


def create_app() -> Flask:
    app = Flask(__name__)

    @app.post("/cds-services/<service_id>")
    def call_service(service_id: str):
        request.get_json(force=True)
        return jsonify({"cards": []})

    @app.get("/healthz")
    def healthz():
        return jsonify({"status": "ok"})

    return app
