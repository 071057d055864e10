"""The OpenAPI 3.1 document of every endpoint, kept in the repo beside the code and served as is."""
from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from flask import Blueprint, jsonify

bp = Blueprint("openapi", __name__)


@cache
def openapi_document() -> dict[str, Any]:
    """cds_service/openapi.json, read once."""
    return json.loads(resources.files(__package__).joinpath("openapi.json").read_text(encoding="utf-8"))


@bp.get("/openapi.json")
def serve_openapi():
    return jsonify(openapi_document())
