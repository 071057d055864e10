"""The gunicorn settings the service and the benchmark run under: GC tuned once a worker has loaded the app."""
from __future__ import annotations

import gc

from cds_service import gunicorn_conf
from cds_service.cli import GUNICORN_CONFIG


def test_worker_init_freezes_start_up_objects_and_raises_thresholds():
    before = gc.get_threshold()
    try:
        gunicorn_conf.post_worker_init(object())
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == gunicorn_conf.GC_THRESHOLDS
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_serve_and_benchmark_name_the_same_config_module():
    assert f"python:{gunicorn_conf.__name__}" == GUNICORN_CONFIG
