"""Structured logs: one JSON line per record, and one summary line per request, with no patient data.

What a request line may hold is fixed here and nowhere else: the route template (never the
filled-in path), the service and hook names the service knows, a hookInstance only when it is a
UUID, the status, the duration and how many orders got each decision. Patient ids, names, birth
dates and tokens never reach a log line, because nothing here reads the body or the headers.
"""
from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson
from flask import Flask, Response, g, request

from .discovery import SERVICES

REQUEST_LOGGER = "cds_service.requests"
_UUID = re.compile(r"^(urn:uuid:)?[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}

log = logging.getLogger(REQUEST_LOGGER)


class JsonFormatter(logging.Formatter):
    """A log record as one JSON object: time, level, logger, message and the record's `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update({k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        try:
            return orjson.dumps(out, default=str).decode()  # one line per request: the standard library took 3x
        except TypeError:
            return json.dumps(out, default=str, ensure_ascii=False)


def configure_logging() -> None:
    """Give the service's logger a JSON handler unless the host (gunicorn, tests) already configured logging."""
    logger = logging.getLogger("cds_service")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)


def note_hook(hook: str, hook_instance: str, decisions: Iterable[str]) -> None:
    """Record, for this request's log line, which hook ran and how many orders got each decision."""
    g.log_hook = {
        "hook": hook if hook in ("order-sign", "order-select") else "other",
        "hookInstance": hook_instance if _UUID.match(hook_instance) else "not-a-uuid",
        "decisions": dict(Counter(decisions)),
    }


def _started() -> None:
    g.log_started = time.perf_counter()


def _finished(response: Response) -> Response:
    started = g.get("log_started")
    fields: dict[str, Any] = {
        "event": "request",
        "method": request.method,
        "route": request.url_rule.rule if request.url_rule is not None else "unmatched",
        "status": response.status_code,
        "duration_ms": round((time.perf_counter() - started) * 1000, 1) if started else None,
    }
    service = (request.view_args or {}).get("service_id")
    if isinstance(service, str):
        fields["service"] = service if service in SERVICES else "unknown"
    fields.update(g.get("log_hook") or {})
    if DEFERRED.server_writes:
        request.environ[DEFERRED.key] = fields  # written by the server once the answer is sent
    else:
        log.info("request", extra=fields)
    return response


class _Deferred:
    """Whether the server writes each request's line after its answer is sent (gunicorn with gunicorn_conf, whose
    post_request hook calls `write_deferred`): formatting and writing it then delays no caller."""

    key = "cds_service.request_log"
    server_writes = False


DEFERRED = _Deferred()


def write_deferred(environ: dict[str, Any]) -> None:
    """Write the line a request left for the server (nothing when it left none)."""
    fields = environ.pop(DEFERRED.key, None)
    if fields is not None:
        log.info("request", extra=fields)


def init_request_log(app: Flask) -> None:
    """Log one line per request, whatever its outcome (401s included)."""
    app.before_request_funcs.setdefault(None, []).insert(0, _started)
    app.after_request(_finished)
