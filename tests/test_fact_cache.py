"""Facts remembered by a resource's exact bytes: the same answers as reading afresh, and nothing stale."""
from __future__ import annotations

import copy
import json
from datetime import date

import pytest

from cds_service import fhir_facts
from cds_service.fact_cache import FactCache
from cds_service.fhir_facts import build_record, read_drafts
from cds_service.policies import load_policies
from cds_service.raw_resources import Resources
from tests.conftest import FIXTURES, ROOT, TODAY, load_fixture, make_app

from .test_scenarios import SCENARIOS

AS_OF = date.fromisoformat(TODAY)


def _height(value: float, rid: str = "h1") -> dict:
    return {"resourceType": "Observation", "id": rid, "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8302-2"}]},
            "effectiveDateTime": "2026-11-15", "valueQuantity": {"value": value, "unit": "cm",
                                                                  "system": "http://unitsofmeasure.org", "code": "cm"}}


def _order_by_reference(med_id: str = "m1") -> dict:
    return {"resourceType": "MedicationRequest", "id": "o1", "status": "draft", "intent": "order",
            "subject": {"reference": "Patient/p1"}, "medicationReference": {"reference": f"Medication/{med_id}"}}


def _medication(code: str, display: str, med_id: str = "m1") -> dict:
    return {"resourceType": "Medication", "id": med_id,
            "code": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": code,
                                 "display": display}]}}


@pytest.fixture(scope="module")
def interest():
    return load_policies(ROOT / "cards").interest


def _record(interest, observations, cache):
    return build_record("p1", {"observations": observations}, [], {}, interest, AS_OF, cache=cache)


class _CountingValidate:
    """Counts R4B validations, so a test can tell a remembered read from a fresh one."""

    def __init__(self, monkeypatch):
        self.calls = 0
        original = fhir_facts._Reader.validate

        def counting(reader, model, raw):
            self.calls += 1
            return original(reader, model, raw)
        monkeypatch.setattr(fhir_facts._Reader, "validate", counting)


def test_identical_bytes_are_read_once_and_give_the_same_facts(interest, monkeypatch):
    validations = _CountingValidate(monkeypatch)
    cache = FactCache(100)
    first = _record(interest, [_height(170.0)], cache)
    after_first = validations.calls
    second = _record(interest, [_height(170.0)], cache)
    assert after_first == 1 and validations.calls == 1, "the second identical resource was validated again"
    assert first.observations == second.observations and second.observations[0].value.value == 170.0
    assert cache.hits == 1 and cache.misses == 1


def test_a_changed_value_is_read_afresh(interest):
    cache = FactCache(100)
    _record(interest, [_height(170.0)], cache)
    changed = _record(interest, [_height(171.5)], cache)
    assert changed.observations[0].value.value == 171.5
    assert cache.misses == 2 and cache.hits == 0


def test_an_unreadable_resource_stays_unreadable_when_remembered(interest):
    broken = _height(170.0)
    broken["effectiveDateTime"] = "not a date"
    cache = FactCache(100)
    records = [_record(interest, [copy.deepcopy(broken)], cache) for _ in range(2)]
    for record in records:
        assert record.observations is None and not record.has("observations")
        assert any("Observation could not be read" in note for note in record.unreadable)
    assert cache.hits == 1


def test_the_referenced_medication_is_part_of_the_key():
    """The same order bytes pointing at a different Medication resource are a different drug."""
    cache = FactCache(100)
    order = _order_by_reference()
    first, _ = read_drafts([order], {"Medication/m1": _medication("197989", "mitoxantrone")}, cache)
    second, _ = read_drafts([order], {"Medication/m1": _medication("1723770", "ixazomib")}, cache)
    assert [c.code for c in first[0].codes] == ["197989"]
    assert [c.code for c in second[0].codes] == ["1723770"]
    assert cache.hits == 0


def test_least_recently_used_facts_go_first(interest):
    cache = FactCache(2)
    for rid in ("a", "b", "a", "c"):  # "a" was used again, so "b" is the one to go
        _record(interest, [_height(170.0, rid)], cache)
    assert len(cache) == 2
    _record(interest, [_height(170.0, "a")], cache)
    hits = cache.hits
    _record(interest, [_height(170.0, "b")], cache)
    assert cache.hits == hits, "'b' should have been evicted"


def test_size_zero_turns_the_cache_off(sqlite_url):
    assert make_app(sqlite_url, CDS_FACT_CACHE_SIZE=0).extensions["cds_service"].facts is None
    assert make_app(sqlite_url).extensions["cds_service"].facts is not None


def _traces(response) -> list:
    cards = response.get_json()["cards"]
    return [c["extension"]["prior-auth.evaluation"] for c in cards]


def test_every_scenario_answers_the_same_from_a_warm_cache(tmp_path):
    """All fixtures through one app twice (the second time every resource is remembered, and fixtures share
    bytes with each other) give the traces an app without the cache gives."""
    fresh = make_app(f"sqlite:///{tmp_path / 'a.sqlite3'}", CDS_FACT_CACHE_SIZE=0).test_client()
    warm_app = make_app(f"sqlite:///{tmp_path / 'b.sqlite3'}")
    warm = warm_app.test_client()
    scenarios = [p for p in SCENARIOS if not load_fixture(p).get("answers")]
    assert len(scenarios) > 100
    for _ in range(2):
        for path in scenarios:
            scenario = load_fixture(path)
            service = scenario.get("service", "prior-auth-order-sign")
            want = fresh.post(f"/cds-services/{service}", json=scenario["request"])
            got = warm.post(f"/cds-services/{service}", json=scenario["request"])
            assert got.status_code == want.status_code, path.name
            if want.status_code == 200:
                assert _traces(got) == _traces(want), path.relative_to(FIXTURES)
    assert warm_app.extensions["cds_service"].facts.hits > 0


# --- whole data sets: a Bundle's entries as the EHR sent them ---------------------------------------------------

def _bundle(*observations: dict) -> Resources:
    """An observations data set as split_body leaves it: the entries in bytes, nothing decoded."""
    return Resources(entries_json=json.dumps([{"resource": o} for o in observations]).encode())


def _bundle_record(interest, data_set, cache, medications=None):
    return build_record("p1", {"observations": data_set}, [], medications or {}, interest, AS_OF, cache=cache)


def test_a_bundle_seen_again_is_one_look_up_and_decodes_nothing(interest, monkeypatch):
    validations = _CountingValidate(monkeypatch)
    cache = FactCache(100)
    entries = [_height(170.0, "a"), _height(171.0, "b"), {**_height(1.0, "c"), "code": {"text": "not read"}}]
    first = _bundle_record(interest, _bundle(*entries), cache)
    validated = validations.calls
    again = _bundle(*entries)
    second = _bundle_record(interest, again, cache)
    assert validated == 2 and validations.calls == 2
    assert again._items is None, "the entries of a remembered Bundle were decoded"
    assert first.observations == second.observations and [o.ref for o in second.observations] == \
        ["Observation/a", "Observation/b"]
    assert cache.hits == 1


def test_a_bundle_with_one_resource_changed_reads_only_that_one_afresh(interest, monkeypatch):
    validations = _CountingValidate(monkeypatch)
    cache = FactCache(100)
    _bundle_record(interest, _bundle(_height(170.0, "a"), _height(171.0, "b")), cache)
    before = validations.calls
    changed = _bundle_record(interest, _bundle(_height(170.0, "a"), _height(180.0, "b")), cache)
    assert validations.calls == before + 1
    assert [o.value.value for o in changed.observations] == [170.0, 180.0]


def test_a_bundle_names_the_medications_it_was_read_with():
    """The same entries read with another Medication behind a reference are another drug's history."""
    policies = load_policies(ROOT / "cards")
    given = {"resourceType": "MedicationAdministration", "id": "a1", "status": "completed",
             "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2026-10-01",
             "medicationReference": {"reference": "Medication/m1"}}
    cache = FactCache(100)
    records = [build_record("p1", {"medicationAdministrations": Resources(entries_json=json.dumps(
        [{"resource": given}]).encode())}, [], {"Medication/m1": med}, policies.interest, AS_OF, cache=cache)
        for med in (_medication("197989", "mitoxantrone"), _medication("1723770", "ixazomib"))]
    assert [[c.code for c in r.medications[0].codes] for r in records] == [["197989"], ["1723770"]]


def test_entries_of_an_odd_shape_with_a_number_out_of_range_make_the_data_set_unknown(interest):
    data_set = Resources(entries_json=b'[{"resource": {"resourceType": "Observation", "value": 1e400}}, "x"]')
    record = _bundle_record(interest, data_set, FactCache(100))
    assert record.observations is None and not record.has("observations")
    assert any("could not be read" in note for note in record.unreadable)


def test_the_cache_holds_no_more_bytes_than_it_is_given():
    cache = FactCache(100, max_bytes=3_000)
    for i in range(10):
        cache.read(("r", bytes(1_000) + bytes([i])), lambda i=i: (i, ()))
    assert cache.size_bytes <= 3_000 and len(cache) == 2
    cache.read(("r", bytes(5_000)), lambda: ("too big", ()))  # larger than the whole cache: read, not kept
    assert len(cache) == 2 and cache.size_bytes <= 3_000
