"""gunicorn settings for the service (`gunicorn -c python:cds_service.gunicorn_conf 'cds_service:create_app()'`).

Garbage collection, tuned once the worker has loaded the app. A hook call decodes a chart into tens of
thousands of objects (a million for a 5,000-resource record) that live until the answer is sent; with
CPython's default thresholds they are scanned again and again while they are young and then trigger full
collections that walk everything the worker holds (policies, FHIR model classes, remembered facts): 150 ms
of a 5,000-resource call. Freezing what start-up built moves it out of every collection, and a larger
first-generation threshold lets a call's short-lived objects die by reference counting before a collection
looks at them. Cycles are still collected; they are just looked for less often.

The request's log line is written once its answer is sent (post_request), not before.
"""
from __future__ import annotations

import gc
from typing import Any

GC_THRESHOLDS = (10_000, 50, 1_000)  # CPython's defaults are (700, 10, 10)


def post_worker_init(worker: object) -> None:
    """gunicorn calls this in each worker once the app is loaded (the worker is not needed)."""
    from cds_service.logs import DEFERRED  # the app's modules, loaded by now: this file stays light for the master

    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    DEFERRED.server_writes = True


def post_request(worker: object, req: object, environ: dict[str, Any], resp: object) -> None:
    """gunicorn calls this once a response is sent (or the request failed): the request's log line."""
    from cds_service.logs import write_deferred

    write_deferred(environ)
