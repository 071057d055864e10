"""Storage on SQLite and PostgreSQL: migrations, audit, the documentation loop, feedback, JWT replay, outage."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect

from cds_service import cli
from cds_service.db import make_engine, remember_jti, storage
from fixtures.generate.mitoxantrone import ms_request
from tests.conftest import make_app

TABLES = {"hook_calls", "coverage_assertions", "questionnaire_responses", "questionnaire_answers", "feedback",
          "seen_jti", "alembic_version"}
CANONICAL = "http://localhost/fhir/Questionnaire/mitoxantrone"


def _trace(body: dict) -> dict:
    [card] = body["cards"]
    return card["extension"]["prior-auth.evaluation"]


def _status(trace: dict, clause: str) -> str:
    return next(c["status"] for c in trace["criteria"] if c["id"] == clause)


def _form(clause: str, value: bool, authored: str = "2026-11-25T10:00:00Z") -> dict:
    return {"resourceType": "QuestionnaireResponse", "status": "completed", "questionnaire": CANONICAL,
            "subject": {"reference": "Patient/pat-1"}, "authored": authored,
            "item": [{"linkId": "section-I", "item": [{"linkId": clause, "answer": [{"valueBoolean": value}]}]}]}


def test_start_up_migrates_and_the_command_is_idempotent(db_url):
    make_app(db_url)
    engine = make_engine(db_url)
    assert set(inspect(engine).get_table_names()) >= TABLES
    engine.dispose()
    assert cli.main(["migrate", "--database-url", db_url]) == 0


def test_documentation_loop_closes(db_url):
    """documentation-needed with I.A.5 unknown -> the form answers I.A.5 -> the same call: I.A.5 met, criteria met."""
    client = make_app(db_url).test_client()
    request = ms_request()
    before = _trace(client.post("/cds-services/prior-auth-order-sign", json=request).get_json())
    assert before["decision"] == "documentation-needed" and _status(before, "I.A.5") == "unknown"

    posted = client.post("/fhir/QuestionnaireResponse", json=_form("I.A.5", True))
    assert posted.status_code == 201, posted.get_data(as_text=True)
    location = posted.headers["Location"]
    assert location.startswith("http://localhost/fhir/QuestionnaireResponse/")
    read = client.get(location.removeprefix("http://localhost"))
    assert read.status_code == 200 and read.get_json()["item"][0]["item"][0]["answer"] == [{"valueBoolean": True}]

    after = _trace(client.post("/cds-services/prior-auth-order-sign", json=request).get_json())
    assert _status(after, "I.A.5") == "met"
    assert after["decision"] == "criteria-met"


def test_a_later_answer_replaces_an_earlier_one_and_false_is_not_met(db_url):
    client = make_app(db_url).test_client()
    assert client.post("/fhir/QuestionnaireResponse", json=_form("I.A.5", True, "2026-11-20T10:00:00Z")).status_code \
        == 201
    assert client.post("/fhir/QuestionnaireResponse", json=_form("I.A.5", False, "2026-11-24T10:00:00Z")).status_code \
        == 201
    trace = _trace(client.post("/cds-services/prior-auth-order-sign", json=ms_request()).get_json())
    assert _status(trace, "I.A.5") == "not-met" and trace["decision"] == "criteria-not-met"


def test_answers_are_per_patient(db_url):
    client = make_app(db_url).test_client()
    other = _form("I.A.5", True)
    other["subject"] = {"reference": "Patient/someone-else"}
    assert client.post("/fhir/QuestionnaireResponse", json=other).status_code == 201
    trace = _trace(client.post("/cds-services/prior-auth-order-sign", json=ms_request()).get_json())
    assert _status(trace, "I.A.5") == "unknown"


def test_every_hook_call_is_audited_by_hook_instance(db_url):
    app = make_app(db_url)
    client = app.test_client()
    request = ms_request(instance="d3b07384-d9a0-4c9b-8f6e-000000000042")
    body = client.post("/cds-services/prior-auth-order-sign", json=request).get_json()
    with app.app_context():
        [call] = storage().hook_calls("d3b07384-d9a0-4c9b-8f6e-000000000042")
        assert call.hook == "order-sign" and call.service == "prior-auth-order-sign"
        assert call.response_json == body and call.request_json["context"] == request["context"]
        issued = {a.id for a in call.assertions}
    ext = body["systemActions"][0]["resource"]["extension"][-1]
    assert issued == {s["valueString"] for s in ext["extension"] if s["url"] == "coverage-assertion-id"}


def _feedback(card: str = "5f8a1c2e-1111-4000-8000-000000000001", stamp: str = "2026-11-26T09:30:00Z") -> dict:
    return {"feedback": [{"card": card, "outcome": "accepted", "acceptedSuggestions": [{"id": "s-1"}],
                          "outcomeTimestamp": stamp}]}


def test_feedback_posted_twice_is_stored_once(db_url):
    app = make_app(db_url)
    client = app.test_client()
    first = client.post("/cds-services/prior-auth-order-sign/feedback", json=_feedback())
    same_instant = client.post("/cds-services/prior-auth-order-sign/feedback",
                               json=_feedback(stamp="2026-11-26T10:30:00+01:00"))
    assert first.status_code == 200 and same_instant.status_code == 200
    assert first.get_json()["stored"] == 1 and same_instant.get_json()["stored"] == 0
    with app.app_context():
        assert storage().feedback_count() == 1


def test_remember_jti_refuses_a_replay(db_url):
    app = make_app(db_url)
    expires = datetime.now(UTC) + timedelta(minutes=5)
    with app.app_context():
        assert remember_jti("jti-1", "https://ehr.example", expires) is True
        assert remember_jti("jti-1", "https://ehr.example", expires) is False
        assert remember_jti("jti-2", "https://ehr.example", expires) is True


def test_postgres_outage_gives_503_then_a_retry_is_stored(postgres_server):
    app = make_app(postgres_server.new_database())
    client = app.test_client()
    postgres_server.stop()
    try:
        down = client.post("/cds-services/prior-auth-order-sign/feedback", json=_feedback("card-outage"))
        assert down.status_code == 503
        assert down.get_json()["resourceType"] == "OperationOutcome"
        form = client.post("/fhir/QuestionnaireResponse", json=_form("I.A.5", True))
        assert form.status_code == 503
        assert client.get("/readyz").status_code == 503
        hook = client.post("/cds-services/prior-auth-order-sign", json=ms_request())
        assert hook.status_code == 200 and hook.get_json()["cards"], "guidance still given"
        assert hook.get_json()["systemActions"] == [], "no assertion id that was never stored"
    finally:
        postgres_server.start()
    retry = client.post("/cds-services/prior-auth-order-sign/feedback", json=_feedback("card-outage"))
    assert retry.status_code == 200 and retry.get_json()["stored"] == 1
    assert client.get("/readyz").status_code == 200


@pytest.mark.parametrize("clause", ["I.A.1.a.i"])
def test_a_yes_answer_decides_a_record_clause_the_record_leaves_unknown(db_url, clause):
    """The step-therapy history is absent: the record leaves I.A.1.a.i unknown, the documented answer decides."""
    client = make_app(db_url).test_client()
    request = ms_request(statements=[])
    assert _status(_trace(client.post("/cds-services/prior-auth-order-sign", json=request).get_json()),
                   clause) == "unknown"
    assert client.post("/fhir/QuestionnaireResponse", json=_form(clause, True)).status_code == 201
    trace = _trace(client.post("/cds-services/prior-auth-order-sign", json=request).get_json())
    assert _status(trace, clause) == "met"
