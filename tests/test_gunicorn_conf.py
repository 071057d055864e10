"""The gunicorn settings the service and the benchmark run under: GC tuned once a worker has loaded the app, and
each request's log line written once its answer is sent."""
from __future__ import annotations

import gc

from cds_service import gunicorn_conf
from cds_service.cli import GUNICORN_CONFIG
from cds_service.logs import DEFERRED
from fixtures.generate.mitoxantrone import ms_request
from tests.test_logs import log_lines  # noqa: F401 - a fixture


def test_worker_init_freezes_start_up_objects_and_raises_thresholds(monkeypatch):
    monkeypatch.setattr(DEFERRED, "server_writes", False)  # set by the hook: undone after the test
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


def test_under_gunicorn_the_request_line_is_written_once_the_answer_is_sent(app, log_lines, monkeypatch):  # noqa: F811
    monkeypatch.setattr(DEFERRED, "server_writes", True)  # what post_worker_init does in each worker
    served = []
    wsgi = app.wsgi_app
    app.wsgi_app = lambda environ, start: served.append(environ) or wsgi(environ, start)
    response = app.test_client().post("/cds-services/prior-auth-order-sign", json=ms_request())
    assert response.status_code == 200
    assert not any('"event":"request"' in line for line in log_lines), "not while the answer waits"
    [environ] = served
    gunicorn_conf.post_request(None, None, environ, None)
    [line] = [line for line in log_lines if '"event":"request"' in line]
    assert '"status":200' in line and '"route":"/cds-services/<service_id>"' in line
    gunicorn_conf.post_request(None, None, environ, None)
    assert len([line for line in log_lines if '"event":"request"' in line]) == 1, "written once"
