"""The prefetch kept in bytes reads as the decoded prefetch does: the same resources, links, schema verdicts and
errors, for every fixture and for bodies drawn to break the shapes split_body reads; a resource whose JSON cannot be
read makes its data set unknown, never the whole call an error."""
from __future__ import annotations

import json
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cds_service import raw_resources
from cds_service.errors import InvalidRequest
from cds_service.fhir_facts import build_record
from cds_service.hook_request import parse_hook_request
from cds_service.policies import load_policies
from cds_service.raw_resources import PrefetchBundle, RawResource, UnreadableJSON, split_body
from tests.conftest import FIXTURES, ROOT, TODAY, load_fixture

from .test_hook_request_schema import ANY_VALUE, JSON

REQUESTS = sorted(p for p in FIXTURES.glob("*/*.json") if "request" in load_fixture(p))


def _view(prefetch) -> dict:
    """A prefetch as plain data, whichever way it was read."""
    def one(value):
        if isinstance(value, PrefetchBundle):
            items = value.resources.items
            return "bundle", [r.data for r in items], [(r.resource_type, r.id) for r in items], value.next_url
        if isinstance(value, RawResource):
            return "resource", value.data, value.resource_type, value.id
        return "other", value
    return {key: one(value) for key, value in prefetch.items()}


def _outcome(parse):
    try:
        return "ok", parse()
    except InvalidRequest as exc:
        return "error", exc.args, exc.expression


def _both_ways(raw: bytes):
    """(split, whole): the request read from split_body, and read from the fully decoded body (None: split declined)."""
    split = split_body(raw)
    whole = _outcome(lambda: parse_hook_request(json.loads(raw)))
    if split is None:
        return None, whole
    return _outcome(lambda: parse_hook_request(split.checked, split.prefetch)), whole


def _same(split, whole) -> None:
    assert split[0] == whole[0], (split, whole)
    if split[0] == "error":
        assert split == whole
        return
    a, b = split[1], whole[1]
    assert _view(a.prefetch) == _view(b.prefetch)
    assert (a.hook, a.hook_instance, a.context, a.fhir_server, a.access_token, a.extension) == \
        (b.hook, b.hook_instance, b.context, b.fhir_server, b.access_token, b.extension)


@pytest.mark.parametrize("path", REQUESTS, ids=[f"{p.parent.name}/{p.stem}" for p in REQUESTS])
def test_every_fixture_request_splits_and_reads_as_decoding_it_whole(path):
    raw = json.dumps(load_fixture(path)["request"]).encode()
    split, whole = _both_ways(raw)
    assert split is not None, "a fixture of the common shape should take the split path"
    _same(split, whole)


def test_the_schema_asks_of_a_prefetch_value_only_what_split_body_checks():
    """split_body hands the schema each Bundle without its entries: that holds only while the schema's prefetch
    rule reads no more than a value's `resourceType` (change both together)."""
    schema = json.loads((ROOT / "cds_service" / "schemas" / "hook-request.schema.json").read_text())
    assert schema["properties"]["prefetch"] == {
        "type": "object", "additionalProperties": {"anyOf": [{"$ref": "#/$defs/resource"}, {"type": "null"}]}}
    assert schema["$defs"]["resource"] == {
        "type": "object", "required": ["resourceType"], "properties": {"resourceType": {"type": "string",
                                                                                         "minLength": 1}}}


def _base(prefetch) -> dict:
    return {"hook": "order-sign", "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
            "context": {"userId": "Practitioner/1", "patientId": "p1",
                        "draftOrders": {"resourceType": "Bundle", "entry": []}},
            "prefetch": prefetch}


OBSERVATION = {"resourceType": "Observation", "id": "o1", "status": "final",
               "code": {"coding": [{"system": "http://loinc.org", "code": "8302-2"}]}}
VALID = [OBSERVATION, {"resourceType": "OperationOutcome", "id": "x"},
         {"resourceType": "Medication", "id": "m1", "code": {"text": "x"}}, {"resourceType": "Patient", "id": 5}]
ODD_RESOURCES = [{"resourceType": ""}, {"resourceType": 3}, {}, [], "x", None]
SEARCHES = [{"mode": "match"}, {"mode": "outcome"}, {"mode": 1}, {}, "outcome", None, []]
LINKS = [{"relation": "next", "url": "https://x/2"}, {"relation": "self", "url": "https://x/1"},
         {"relation": "next", "url": 7}, {"relation": "next"}, {"url": "https://x/3"}, "next", None]


def _sometimes(draw, common, odd, odds: int = 4):
    """Mostly a value of the common shape; one time in `odds`, an odd one (so the split path is exercised too)."""
    return draw(odd) if draw(st.integers(0, odds - 1)) == 0 else draw(common)


@st.composite
def entries(draw) -> dict:
    entry = {}
    if draw(st.integers(0, 5)):
        entry["resource"] = _sometimes(draw, st.sampled_from(VALID), st.sampled_from(ODD_RESOURCES) | JSON)
    if draw(st.booleans()):
        entry["search"] = draw(st.sampled_from(SEARCHES))
    if draw(st.booleans()):
        entry["fullUrl"] = draw(st.text(max_size=5))
    return entry


@st.composite
def bundles(draw) -> dict:
    bundle = {"resourceType": _sometimes(draw, st.just("Bundle"), st.sampled_from(["List", "", 3]), odds=8)}
    if draw(st.integers(0, 5)):
        bundle["entry"] = _sometimes(draw, st.lists(entries(), max_size=5),
                                     ANY_VALUE | st.lists(entries() | ANY_VALUE, max_size=3), odds=6)
    if draw(st.booleans()):
        bundle["link"] = _sometimes(draw, st.lists(st.sampled_from(LINKS), max_size=3), ANY_VALUE, odds=6)
    return bundle


@st.composite
def prefetches(draw):
    keys = st.sampled_from(["patient", "observations", "conditions", "coverage", "user", "x"])
    value = bundles() | bundles() | bundles() | st.sampled_from([*VALID, None])
    return _sometimes(draw, st.dictionaries(keys, value, max_size=4),
                      ANY_VALUE | st.dictionaries(keys, value | ANY_VALUE, max_size=3), odds=6)


PREFETCH = prefetches()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(PREFETCH, st.none() | ANY_VALUE)
def test_any_prefetch_reads_as_decoding_it_whole(prefetch, extra):
    body = _base(prefetch)
    if extra is not None:
        body["x-extra"] = extra  # a member CDS Hooks does not name: the body is read in two passes
    split, whole = _both_ways(json.dumps(body).encode())
    if split is not None:
        _same(split, whole)


@pytest.mark.parametrize("raw", [
    json.dumps(_base({"patient": {"resourceType": "Patient", "name": [{"text": "\udc00"}]}})).encode(),  # surrogate
    json.dumps(_base({})).encode().replace(b'"p1"', b'"p\xff1"'),  # not UTF-8
    json.dumps(_base({})).encode().replace(b'"p1"', b'"p1", "n": 1e400'),  # out of range outside the prefetch
    json.dumps(_base([])).encode(),  # a prefetch that is not an object
])
def test_bodies_of_another_shape_are_decoded_whole(raw):
    assert split_body(raw) is None


def test_a_body_of_the_discovery_keys_is_read_in_one_pass(monkeypatch):
    raw = json.dumps(_base({"observations": {"resourceType": "Bundle", "entry": [{"resource": OBSERVATION}]},
                            "patient": {"resourceType": "Patient", "id": "p1"}, "conditions": None})).encode()
    whole = _both_ways(raw)[1]
    monkeypatch.setattr(raw_resources, "_TOP", None)  # the two-pass reading: not needed for this body
    split = split_body(raw)
    _same(_outcome(lambda: parse_hook_request(split.checked, split.prefetch)), whole)


@pytest.mark.parametrize("value", [{"resourceType": "OperationOutcome", "id": "x"}, OBSERVATION, "text", []])
def test_a_search_key_holding_no_bundle_reads_as_decoding_it_whole(value):
    body = _base({"observations": value, "patient": {"resourceType": "Patient"}})
    split, whole = _both_ways(json.dumps(body).encode())
    if split is not None:
        _same(split, whole)


def test_resources_are_copied_out_of_the_body():
    """The fact cache keys on a resource's bytes: a view into the body would keep every body alive."""
    split = split_body(json.dumps(_base({"observations": {"resourceType": "Bundle",
                                                          "entry": [{"resource": OBSERVATION}]}})).encode())
    (resource,) = split.prefetch["observations"].resources.items
    assert type(resource.json) is bytes and json.loads(resource.json) == OBSERVATION


def _out_of_range_observation() -> bytes:
    return json.dumps(_base({"observations": {"resourceType": "Bundle", "entry": [{"resource": OBSERVATION}]}})) \
        .replace('"status": "final"', '"status": "final", "valueQuantity": {"value": 1e400}').encode()


def test_a_resource_with_a_number_out_of_range_is_unreadable_not_an_error():
    split = split_body(_out_of_range_observation())
    (resource,) = split.prefetch["observations"].resources.items
    with pytest.raises(UnreadableJSON):
        _ = resource.data
    interest = load_policies(ROOT / "cards").interest
    record = build_record("p1", {"observations": [resource]}, [], {}, interest, date.fromisoformat(TODAY))
    assert record.observations is None and not record.has("observations")
    assert any("Observation could not be read" in note for note in record.unreadable)


def test_a_hook_call_with_such_a_resource_still_answers_and_says_so(client):
    request = next(body for path in REQUESTS if (body := load_fixture(path)["request"]).get("prefetch", {})
                   .get("observations", {}).get("entry"))
    request["prefetch"]["observations"]["entry"].append({"resource": {**OBSERVATION, "valueQuantity": {"value": 7}}})
    raw = json.dumps(request).replace('{"value": 7}', '{"value": 1e400}').encode()
    response = client.post("/cds-services/prior-auth-order-sign", data=raw, content_type="application/json")
    assert response.status_code == 200, response.get_data(as_text=True)
    (card,) = response.get_json()["cards"]
    assert "Observation could not be read" in card["detail"]


def test_a_paged_bundle_names_its_next_page_not_its_self_link():
    bundle = {"resourceType": "Bundle", "link": [{"relation": "self", "url": "https://ehr/fhir/Observation?p=1"},
                                                 {"relation": "next", "url": "https://ehr/fhir/Observation?p=2"}],
              "entry": [{"resource": OBSERVATION}]}
    split, whole = _both_ways(json.dumps(_base({"observations": bundle})).encode())
    _same(split, whole)
    assert split[1].prefetch["observations"].next_url == "https://ehr/fhir/Observation?p=2"


def test_entries_without_a_resource_keep_the_body_on_the_split_path():
    bundle = {"resourceType": "Bundle", "entry": [{"fullUrl": "urn:x"}, {"resource": "x"}, {"resource": OBSERVATION}]}
    split = split_body(json.dumps(_base({"observations": bundle})).encode())
    assert split is not None
    assert [r.id for r in split.prefetch["observations"].resources.items] == ["o1"]


@pytest.mark.parametrize("where", ["hook", "context", "prefetch"])
def test_a_body_nested_past_any_parser_is_refused_wherever_the_nesting_is(client, where):
    deep = "[" * 5000 + "]" * 5000
    body = json.dumps(_base({"observations": {"resourceType": "Bundle", "entry": [{"resource": OBSERVATION}]}}))
    body = {"hook": body.replace('"order-sign"', deep, 1), "context": body.replace('"p1"', deep, 1),
            "prefetch": body.replace('"8302-2"', deep, 1)}[where]
    response = client.post("/cds-services/prior-auth-order-sign", data=body, content_type="application/json")
    assert response.status_code == 400 and "deeper than" in response.get_json()["issue"][0]["diagnostics"]


def _depth(value) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def _nested_at(where: str, levels: int) -> dict:
    """A body whose value at `where` nests `levels` deep."""
    deep = json.loads("[" * levels + "]" * levels)
    bundle = {"resourceType": "Bundle", "entry": [{"resource": dict(OBSERVATION)}]}
    body = _base({"observations": bundle, "patient": {"resourceType": "Patient", "id": "p1"}})
    {"context": lambda: body["context"].update(deep=deep),
     "patient": lambda: body["prefetch"]["patient"].update(deep=deep),
     "link": lambda: bundle.update(link=deep),
     "entry": lambda: bundle["entry"][0]["resource"].update(deep=deep)}[where]()
    return body


@pytest.mark.parametrize("where", ["context", "patient", "link", "entry"])
def test_each_part_is_held_to_the_depth_limit_where_it_sits(where):
    from cds_service.json_codec import MAX_DEPTH

    for levels in range(50, 70):
        body = _nested_at(where, levels)
        split = split_body(json.dumps(body).encode())
        if _depth(body) <= MAX_DEPTH:
            assert split is not None, (where, levels)
            _same(*_both_ways(json.dumps(body).encode()))
        elif where == "entry":  # read when a policy reads the data set: unreadable, not a refused call
            with pytest.raises(UnreadableJSON):
                _ = split.prefetch["observations"].resources.items
        else:
            assert split is None, (where, levels)  # decoded whole: refused as too deep
