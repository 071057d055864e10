"""The request schema is compiled once with its $refs inlined; errors still name the field and its JSON path.

A compiled check (fastjsonschema) passes valid bodies alone; jsonschema explains the rest. Property-based tests hold
the two to the same verdict, and the draft-07 form both read to what the 2020-12 schema file says.
"""
from __future__ import annotations

import copy
import json
import re
from collections import Counter

import fastjsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

import cds_service.hook_request as hook_request_module
from cds_service.errors import InvalidRequest
from cds_service.hook_request import (
    _as_draft7,
    _fast_pattern,
    _inline_refs,
    fast_request_check,
    parse_hook_request,
    request_validator,
)
from tests.builders import concept, hook_request, med_request
from tests.conftest import ROOT


def test_no_ref_is_left_to_resolve_per_request():
    assert '"$ref"' not in json.dumps({k: v for k, v in request_validator().schema.items() if k != "$defs"})


def test_an_error_inside_an_inlined_definition_names_its_path():
    body = hook_request([med_request("mr-1", concept("rxnorm", "197989"))])
    body["context"]["userId"] = "not a reference"
    with pytest.raises(InvalidRequest) as caught:
        parse_hook_request(body)
    assert caught.value.expression == "$.context.userId"


# --- Two validators, one verdict -------------------------------------------------------------------------------
# The compiled check (fastjsonschema) decides alone when a body is valid; jsonschema runs only to explain a rejection.
# So the two must accept exactly the same bodies, and the draft-07 form they read must say what the 2020-12 file says.

def _fast_accepts(body) -> bool:
    try:
        fast_request_check()(body)
    except fastjsonschema.JsonSchemaException:
        return False
    return True


def _as_written() -> Draft202012Validator:
    """The schema file read as it is written (2020-12), as the service read it before the draft-07 form."""
    schema = json.loads((ROOT / "cds_service" / "schemas" / "hook-request.schema.json").read_text())
    return Draft202012Validator(_inline_refs(schema, schema["$defs"]))


def _errors(validator, body) -> list:
    """Every error in the order parse_hook_request sorts them, with the nested errors it descends into."""
    def describe(error):
        return error.message, list(error.absolute_path), [describe(e) for e in error.context]
    errors = sorted(validator.iter_errors(body), key=lambda e: (len(list(e.absolute_path)), e.path))
    return [describe(e) for e in errors]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6)
# Values on either side of the schema's edges: types, patterns, lengths, enums, consts, a final newline.
EDGES = st.sampled_from([
    None, True, False, 0, 1, -1, 1.5, 2.0, [], [""], ["x"], [{}], {}, {"resourceType": "Patient"},
    {"resourceType": ""}, {"resourceType": 5}, {"resourceType": "Bundle", "entry": [{"resource": {}}]},
    "", "\n", " ", "x", "Practitioner/abc", "Practitioner/abc\n", "Practitioner/abc\n\n", "\nPractitioner/abc",
    "Practitioner/", "Practitioner/a b", "Practitioner/" + "a" * 64, "Practitioner/" + "a" * 65, "1/x", "/x",
    "https://ehr.example/fhir", "http://x", "https://\n", "ftp://ehr.example", " https://x", "HTTPS://x",
    "order-sign", "order-select", "patient-view", "Order-sign", "Bundle", "bundle", "Bearer", "bearer", "Basic",
    "a" * 200, "a" * 201, "h" * 2001])
ANY_VALUE = EDGES | EDGES | JSON  # hypothesis draws the first branches more often
RESOURCE = st.fixed_dictionaries({"resourceType": st.text(min_size=1, max_size=12)}, optional={"id": st.text()})
AUTH = st.fixed_dictionaries(
    {"access_token": st.text(min_size=1, max_size=20), "token_type": st.sampled_from(["Bearer", "bearer"]),
     "expires_in": st.integers(min_value=0) | st.integers(0, 10**6).map(float), "scope": st.text(max_size=20),
     "subject": st.text(max_size=20)},
    optional={"patient": st.text(max_size=20)})


@st.composite
def valid_bodies(draw) -> dict:
    hook = draw(st.sampled_from(["order-sign", "order-select"]))
    entry = st.fixed_dictionaries({}, optional={"resource": RESOURCE, "fullUrl": st.text(max_size=10)})
    context = {"userId": draw(st.from_regex(r"\A[A-Za-z]{1,12}/[A-Za-z0-9.\-]{1,64}\Z")),
               "patientId": draw(st.text(min_size=1, max_size=200)),
               "draftOrders": draw(st.fixed_dictionaries({"resourceType": st.just("Bundle")},
                                                         optional={"entry": st.lists(entry, max_size=3)}))}
    if draw(st.booleans()):
        context["encounterId"] = draw(st.text(min_size=1, max_size=20))
    if hook == "order-select" or draw(st.booleans()):
        context["selections"] = draw(st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=3))
    body = {"hook": hook, "hookInstance": draw(st.text(min_size=1, max_size=40)), "context": context}
    if draw(st.booleans()):
        body["prefetch"] = draw(st.dictionaries(st.text(max_size=12), RESOURCE | st.none(), max_size=4))
    if draw(st.booleans()):
        body["fhirServer"] = draw(st.from_regex(r"\Ahttps?://[a-z0-9./:]{0,30}\Z"))
        if draw(st.booleans()):
            body["fhirAuthorization"] = draw(AUTH)
    if draw(st.booleans()):
        body["extension"] = draw(st.dictionaries(st.text(max_size=8), JSON, max_size=2))
    return body


def _places(node, path=()):
    """Every (container, key) of a body, to change or delete what is there."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        yield node, key
        yield from _places(value, (*path, key))


def _replace_somewhere(draw, body):
    container, key = draw(st.sampled_from(list(_places(body))))
    container[key] = draw(ANY_VALUE)


def _delete_somewhere(draw, body):
    members = [(c, k) for c, k in _places(body) if isinstance(c, dict)]
    container, key = draw(st.sampled_from(members))
    del container[key]


def _newline_after_a_string(draw, body):
    strings = [(c, k) for c, k in _places(body) if isinstance(c[k], str)]
    container, key = draw(st.sampled_from(strings))
    container[key] += "\n"


def _empty_a_container(draw, body):
    containers = [(c, k) for c, k in _places(body) if isinstance(c[k], (dict, list))]
    if containers:
        container, key = draw(st.sampled_from(containers))
        container[key].clear()


def _authorization_without_server(draw, body):
    body.pop("fhirServer", None)
    body["fhirAuthorization"] = draw(AUTH)


def _select_without_selections(draw, body):
    body["hook"] = "order-select"
    if isinstance(body.get("context"), dict):
        body["context"].pop("selections", None)
        body["context"]["selections"] = draw(st.sampled_from([[], [""], ["x"], "x", None]))
        if draw(st.booleans()):
            del body["context"]["selections"]


def _prefetch_value(draw, body):
    if not isinstance(body.get("prefetch"), dict):
        body["prefetch"] = {}
    body["prefetch"][draw(st.sampled_from(["patient", "coverage", "x"]))] = draw(ANY_VALUE)


# Each field the schema says something of, with values on either side of what it says (besides WRONG_TYPES).
FIELD_EDGES = {
    ("hook",): ["", "a" * 64, "a" * 65, "order-sign", "order-select", "patient-view"],
    ("hookInstance",): ["", "a" * 128, "a" * 129],
    ("fhirServer",): ["https://x", "http://x", "ftp://x", " https://x", "https://\n", "https://" + "h" * 1992,
                      "https://" + "h" * 1993],
    ("fhirAuthorization",): [{"access_token": "t"}],
    ("fhirAuthorization", "access_token"): ["", "t"],
    ("fhirAuthorization", "token_type"): ["Bearer", "bearer", "Basic", "", "Bearer\n"],
    ("fhirAuthorization", "expires_in"): [0, -1, 3.0, 2.5, -0.5, 10**20],
    ("fhirAuthorization", "scope"): [""],
    ("fhirAuthorization", "subject"): [""],
    ("fhirAuthorization", "patient"): [""],
    ("context",): [{"userId": "Practitioner/1", "patientId": "p", "draftOrders": {"resourceType": "Bundle"}}],
    ("context", "userId"): ["Practitioner/abc", "Practitioner/abc\n", "Practitioner/abc\n\n", "Practitioner/",
                            "1/x", "/x", "Practitioner/a b", "Practitioner/" + "a" * 64, "Practitioner/" + "a" * 65],
    ("context", "patientId"): ["", "a" * 200, "a" * 201],
    ("context", "encounterId"): ["", "a" * 200, "a" * 201],
    ("context", "draftOrders"): [{"resourceType": "Bundle"}, {"resourceType": "Patient"}, {"entry": []}],
    ("context", "draftOrders", "resourceType"): ["Bundle", "Patient", ""],
    ("context", "draftOrders", "entry"): [[{}], ["x"], [{"resource": {}}], [{"resource": None}]],
    ("context", "draftOrders", "entry", 0): [{"resource": {"resourceType": ""}}, {"fullUrl": "x"}],
    ("context", "draftOrders", "entry", 0, "resource"): [{"resourceType": ""}, {"resourceType": "X"}, {"id": "x"}],
    ("context", "draftOrders", "entry", 0, "resource", "resourceType"): ["", "X"],
    ("context", "selections"): [[""], ["x"], ["x", 5]],
    ("context", "selections", 0): ["", "x"],
    ("prefetch",): [{"patient": None}],
    ("prefetch", "patient"): [{"resourceType": ""}, {"resourceType": "Patient"}, {"id": "x"}],
    ("prefetch", "patient", "resourceType"): ["", "Patient"],
    ("extension",): [{"x": 1}],
}
WRONG_TYPES = [None, True, False, 0, 1.5, "x", [], {}]
# What to put on the way to a field, where the body has nothing (or something else) there.
ON_THE_WAY = {
    ("fhirAuthorization",): {"access_token": "t", "token_type": "Bearer", "expires_in": 60, "scope": "s",
                             "subject": "c"},
    ("prefetch",): {}, ("prefetch", "patient"): {"resourceType": "Patient"},
    ("context", "draftOrders"): {"resourceType": "Bundle"}, ("context", "draftOrders", "entry"): [],
    ("context", "draftOrders", "entry", 0): {"resource": {}},
    ("context", "draftOrders", "entry", 0, "resource"): {"resourceType": "MedicationRequest"},
    ("context", "selections"): ["MedicationRequest/mr-1"],
}


def _a_field_the_schema_names(draw, body):
    """A value on either side of what the schema says of one field, the rest of the way to it kept valid."""
    path = draw(st.sampled_from(list(FIELD_EDGES)))
    if path[0] == "fhirAuthorization":  # else the missing fhirServer is the error
        body["fhirServer"] = "https://ehr.example/fhir"
    parent = body
    for depth, key in enumerate(path[:-1], 1):
        way = ON_THE_WAY.get(path[:depth])
        if isinstance(parent, list) and not parent:
            parent.append(None)
        if not isinstance(parent[key] if isinstance(parent, list) else parent.get(key), type(way) if way else dict):
            if way is None:
                return  # the context was replaced by something else: nothing to reach
            parent[key] = copy.deepcopy(way)
        parent = parent[key]
    if isinstance(parent, list) and not parent:
        parent.append(None)
    parent[path[-1]] = copy.deepcopy(draw(st.sampled_from(FIELD_EDGES[path] + WRONG_TYPES)))


MUTATIONS = [_a_field_the_schema_names, _a_field_the_schema_names, _a_field_the_schema_names, _replace_somewhere,
             _delete_somewhere, _newline_after_a_string, _empty_a_container, _authorization_without_server,
             _select_without_selections, _prefetch_value]


@st.composite
def mutated_bodies(draw) -> dict:
    """A valid request changed one to three times: most often once, so that its error is the only one."""
    body = draw(valid_bodies())
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 3]))):
        draw(st.sampled_from(MUTATIONS))(draw, body)
    return body


def request_like_bodies():
    return valid_bodies() | mutated_bodies() | mutated_bodies()


PROPERTY_SETTINGS = settings(max_examples=600, deadline=None, derandomize=True, database=None,
                             suppress_health_check=list(HealthCheck))


def test_the_fast_check_accepts_exactly_the_bodies_jsonschema_finds_no_error_in():
    verdicts = Counter()

    @PROPERTY_SETTINGS
    @given(request_like_bodies())
    def agree(body):
        fast = _fast_accepts(body)
        assert fast == (not _errors(request_validator(), body)), json.dumps(body)
        verdicts[fast] += 1

    agree()
    assert verdicts[True] >= 100 and verdicts[False] >= 100, verdicts  # the generator reaches both sides


@PROPERTY_SETTINGS
@given(request_like_bodies())
def test_the_draft07_form_reports_the_errors_the_2020_12_file_does(body):
    assert _errors(request_validator(), body) == _errors(_as_written(), body)


@pytest.mark.parametrize("change, said, path", [
    (lambda b: b.update(fhirAuthorization={
        "access_token": "t", "token_type": "Bearer", "expires_in": 1, "scope": "s", "subject": "c"}),
     "Invalid field 'fhirServer': 'fhirServer' is a dependency of 'fhirAuthorization'", "$.fhirServer"),
    (lambda b: b.update(fhirServer="https://ehr/fhir", fhirAuthorization={"access_token": "t"}),
     "Invalid field 'token_type': 'token_type' is a required property", "$.fhirAuthorization.token_type"),
    (lambda b: b.update(fhirServer="https://ehr/fhir", fhirAuthorization={
        "access_token": "t", "token_type": "Basic", "expires_in": 1, "scope": "s", "subject": "c"}),
     "Invalid field 'token_type': 'Basic' is not one of ['Bearer', 'bearer']", "$.fhirAuthorization.token_type"),
    (lambda b: b.update(fhirServer="https://ehr/fhir", fhirAuthorization={
        "access_token": "t", "token_type": "Bearer", "expires_in": -1, "scope": "s", "subject": "c"}),
     "Invalid field 'expires_in': -1 is less than the minimum of 0", "$.fhirAuthorization.expires_in"),
    (lambda b: b.update(hook="order-select"),
     "Invalid field 'selections': 'selections' is a required property", "$.context.selections"),
    (lambda b: (b.update(hook="order-select"), b["context"].update(selections=[])),
     "Invalid field 'selections': [] should be non-empty", "$.context.selections"),
    (lambda b: b["context"].update(userId="not a reference"),
     "Invalid field 'userId': 'not a reference' does not match '^[A-Za-z]+/[A-Za-z0-9.\\\\-]{1,64}$'",
     "$.context.userId"),
    (lambda b: b["prefetch"].update(patient=5), "Invalid field 'patient': 5 is not of type 'object'",
     "$.prefetch.patient"),
    (lambda b: b["prefetch"].update(patient={"id": "x"}),
     "Invalid field 'resourceType': 'resourceType' is a required property", "$.prefetch.patient.resourceType"),
    (lambda b: b["context"]["draftOrders"].update(resourceType="Patient"),
     "Invalid field 'resourceType': 'Bundle' was expected", "$.context.draftOrders.resourceType"),
    (lambda b: b["context"]["draftOrders"]["entry"][0].update(resource={"resourceType": ""}),
     "Invalid field 'resourceType': '' should be non-empty", "$.context.draftOrders.entry[0].resource.resourceType"),
    (lambda b: b.update(context=None), "Invalid field 'context': None is not of type 'object'", "$.context"),
])
def test_errors_keep_their_message_and_json_path(change, said, path):
    body = hook_request([med_request("mr-1", concept("rxnorm", "197989"))])
    change(body)
    with pytest.raises(InvalidRequest) as caught:
        parse_hook_request(body)
    assert (caught.value.diagnostics, caught.value.expression) == (said, path)


@pytest.mark.parametrize("change", [
    lambda b: b["context"].update(userId="Practitioner/prac-1\n"),  # Python's `$` allows one final newline
    lambda b: b["prefetch"].update(patient=None),  # the EHR could not prefetch it
    lambda b: b.update(fhirServer="https://ehr/fhir", fhirAuthorization={
        "access_token": "t", "token_type": "bearer", "expires_in": 3.0, "scope": "s", "subject": "c"}),
])
def test_edge_cases_both_validators_accept(change):
    body = hook_request([med_request("mr-1", concept("rxnorm", "197989"))])
    change(body)
    assert _fast_accepts(body)
    assert parse_hook_request(body).hook == "order-sign"


def test_a_valid_body_never_reaches_jsonschema(monkeypatch):
    def thorough():
        raise AssertionError("jsonschema ran on a valid body")
    monkeypatch.setattr(hook_request_module, "request_validator", thorough)
    assert parse_hook_request(hook_request([med_request("mr-1", concept("rxnorm", "197989"))])).patient_id


def test_any_failure_of_the_fast_check_leaves_the_verdict_to_jsonschema(monkeypatch):
    def broken():
        def check(body):
            raise RuntimeError("not a schema error")
        return check
    monkeypatch.setattr(hook_request_module, "fast_request_check", broken)
    body = hook_request([med_request("mr-1", concept("rxnorm", "197989"))])
    assert parse_hook_request(body).hook == "order-sign"
    body["context"]["userId"] = "not a reference"
    with pytest.raises(InvalidRequest) as caught:
        parse_hook_request(body)
    assert caught.value.expression == "$.context.userId"


@pytest.mark.parametrize("schema", [
    {"dependentSchemas": {"a": {"required": ["b"]}}},  # 2020-12 only
    {"prefixItems": [{"type": "string"}]},
    {"items": [{"type": "string"}]},  # a tuple in draft 07, an invalid schema in 2020-12
    {"unevaluatedProperties": False},
    {"format": "uri"},  # fastjsonschema asserts formats, jsonschema by default does not
    {"default": {}},  # fastjsonschema would write it into the body
    {"$ref": "#/$defs/x", "type": "object"},  # a $ref left after inlining: draft 07 ignores its siblings
    {"properties": {"a": {"contentMediaType": "application/json"}}},
])
def test_a_keyword_the_two_validators_do_not_read_alike_refuses_to_load(schema):
    with pytest.raises(ValueError, match="hook-request schema: .* not"):
        _as_draft7(schema, fast=False)


def test_patterns_are_respelled_so_fastjsonschema_reads_dollar_as_python_does():
    fast = _fast_pattern(r"^[a-z]+$")
    for text in ("abc", "abc\n", "abc\n\n", "ab1", "\nabc"):
        assert bool(re.search(fast, text)) == bool(re.search(r"^[a-z]+$", text)), text
    assert _fast_pattern(r"^a\$") == r"^a\$"  # a literal dollar stays one
    with pytest.raises(ValueError, match="final anchor"):
        _fast_pattern(r"^a$|^b$")
