"""Storage on SQLite and PostgreSQL: migrations, audit, the documentation loop, feedback, JWT replay, outage."""
from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError

from cds_service import cli
from cds_service.db import make_engine, remember_jti, storage
from cds_service.errors import StorageUnavailable
from cds_service.state import service_state
from fixtures.generate.mitoxantrone import ms_request
from tests.conftest import ROOT, make_app

TABLES = {"hook_calls", "coverage_assertions", "questionnaire_responses", "questionnaire_answers", "feedback",
          "seen_jti", "audit_journals", "alembic_version"}
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


@pytest.mark.parametrize("journal", ["journaled", "off"])
def test_the_longest_hook_and_hook_instance_the_schema_admits_are_kept(db_url, journal, tmp_path):
    """The request schema's limits are the audit columns' sizes: what is admitted is kept, coverage included."""
    limits = json.loads((ROOT / "cds_service" / "schemas" / "hook-request.schema.json").read_text())["properties"]
    app = make_app(db_url, CDS_AUDIT_JOURNAL_DIR=str(tmp_path / "journal") if journal == "journaled" else "off")
    client = app.test_client()
    order_sign = ms_request(instance="i" * limits["hookInstance"]["maxLength"])
    other_hook = {**ms_request(instance="j" * limits["hookInstance"]["maxLength"]),
                  "hook": "h" * limits["hook"]["maxLength"]}
    answered = client.post("/cds-services/prior-auth-order-sign", json=order_sign).get_json()
    assert answered["systemActions"], "the coverage information goes out: its assertion ids are kept"
    assert client.post("/cds-services/prior-auth-order-sign", json=other_hook).status_code == 200
    with app.app_context():
        [kept] = storage().hook_calls(order_sign["hookInstance"])
        assert kept.response_json == answered and kept.assertions
        [other] = storage().hook_calls(other_hook["hookInstance"])
        assert other.hook == other_hook["hook"]
        if service_state().journal is not None:
            service_state().journal.close()  # now, while the database is up (not at the session's exit)


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
        with app.app_context():
            st = storage()
            with pytest.raises(StorageUnavailable):
                st.answers_for("pat-1", ["mitoxantrone"])
            with pytest.raises(StorageUnavailable):
                st.record_hook_call(service="s", hook="order-sign", hook_instance="down", patient_id="pat-1",
                                    request={}, response={}, assertions=[_assertion("a-down")])
            assert st.engine.pool.checkedout() == 0
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


def _save(st, response_id: str, policy: str, authored: str | None, answers: dict[str, bool],
          patient: str = "pat-1") -> None:
    moment = datetime.fromisoformat(authored) if authored else None
    st.save_questionnaire_response(
        response_id=response_id, patient_id=patient, policy=policy, questionnaire=f"Questionnaire/{policy}",
        status="completed", authored=moment, resource={"resourceType": "QuestionnaireResponse"},
        answers=[{"clause_id": clause, "value_type": "boolean", "value_json": value, "unit": None}
                 for clause, value in answers.items()])


def test_answers_for_gives_the_newest_answer_per_clause_of_each_asked_policy(db_url):
    """Newest by authored time, then by storing order; only the asked policies, only this patient."""
    app = make_app(db_url)
    with app.app_context():
        st = storage()
        _save(st, "r1", "pa", "2026-11-20T10:00:00+00:00", {"c1": True})
        _save(st, "r2", "pa", "2026-11-24T10:00:00+00:00", {"c1": False, "c2": True})
        _save(st, "r3", "pa", "2026-11-22T10:00:00+00:00", {"c2": False})  # stored later, authored earlier
        _save(st, "r4", "pb", "2026-11-23T10:00:00+00:00", {"c1": True})
        _save(st, "r5", "pb", "2026-11-23T10:00:00+00:00", {"c1": False})  # same instant: stored later wins
        _save(st, "r6", "pc", "2026-11-25T10:00:00+00:00", {"c1": True})
        _save(st, "r7", "pa", "2026-11-26T10:00:00+00:00", {"c1": True}, patient="someone-else")

        def picked(policies) -> dict[str, tuple]:
            return {k: (a.value, a.source.removeprefix("QuestionnaireResponse/"), a.authored)
                    for k, a in st.answers_for("pat-1", policies).items()}

        only_a = {"pa:c1": (False, "r2", date(2026, 11, 24)), "pa:c2": (True, "r2", date(2026, 11, 24))}
        assert picked(["pa"]) == only_a
        assert picked(iter(["pa", "pb", "unknown"])) == {**only_a, "pb:c1": (False, "r5", date(2026, 11, 23))}
        assert picked(["pb", "pa", "pc"]) == {**only_a, "pb:c1": (False, "r5", date(2026, 11, 23)),
                                              "pc:c1": (True, "r6", date(2026, 11, 25))}
        assert picked(["unknown"]) == {} and picked([]) == {}
        assert st.answers_for("", ["pa"]) == {}
        assert set(st.answers_for("someone-else", ["pa", "pb"])) == {"pa:c1"}
        assert st.engine.pool.checkedout() == 0, "every read gives its connection back"


def _assertion(assertion_id: str, policy: str = "mitoxantrone") -> dict:
    return {"id": assertion_id, "order_ref": "MedicationRequest/m-1", "coverage_ref": "Coverage/c-1",
            "policy": policy, "decision": "criteria-met", "covered": "covered", "pa_needed": "no-auth",
            "doc_needed": None, "questionnaire": None, "assertion_date": date(2026, 11, 26)}


def test_record_hook_call_links_its_assertions_and_is_all_or_nothing(db_url):
    app = make_app(db_url)
    with app.app_context():
        st = storage()
        first = st.record_hook_call(service="svc", hook="order-sign", hook_instance="hi-1", patient_id="pat-1",
                                    request={"context": {"n": 1}}, response={"cards": [{"summary": "x" * 5000}]},
                                    assertions=[_assertion("a-1"), _assertion("a-2", "other")])
        second = st.record_hook_call(service="svc", hook="order-select", hook_instance="hi-1", patient_id="",
                                     request={}, response={"cards": []}, assertions=iter([_assertion("a-3")]))
        bare = st.record_hook_call(service="svc", hook="order-sign", hook_instance="hi-2", patient_id=None,
                                   request={}, response={}, assertions=[])
        assert len({first, second, bare}) == 3

        one, two = st.hook_calls("hi-1")
        assert (one.id, two.id) == (first, second)
        assert one.patient_id == "pat-1" and two.patient_id is None
        assert one.request_json == {"context": {"n": 1}} and one.response_json["cards"][0]["summary"] == "x" * 5000
        assert {(a.id, a.policy, a.hook_call_id, a.patient_id) for a in one.assertions} == \
            {("a-1", "mitoxantrone", first, "pat-1"), ("a-2", "other", first, "pat-1")}
        assert [(a.id, a.hook_call_id, a.patient_id) for a in two.assertions] == [("a-3", second, None)]
        assert st.assertion("a-3").assertion_date == date(2026, 11, 26)
        [alone] = st.hook_calls("hi-2")
        assert alone.id == bare and alone.assertions == []

        with pytest.raises(IntegrityError):  # an assertion id already issued: the call row goes too
            st.record_hook_call(service="svc", hook="order-sign", hook_instance="hi-3", patient_id="pat-1",
                                request={}, response={}, assertions=[_assertion("a-4"), _assertion("a-1")])
        assert st.hook_calls("hi-3") == [] and st.assertion("a-4") is None
        assert st.engine.pool.checkedout() == 0
