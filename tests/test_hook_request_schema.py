"""The request schema is compiled once with its $refs inlined; errors still name the field and its JSON path."""
from __future__ import annotations

import json

import pytest

from cds_service.errors import InvalidRequest
from cds_service.hook_request import parse_hook_request, request_validator
from tests.builders import concept, hook_request, med_request


def test_no_ref_is_left_to_resolve_per_request():
    assert '"$ref"' not in json.dumps({k: v for k, v in request_validator().schema.items() if k != "$defs"})


def test_an_error_inside_an_inlined_definition_names_its_path():
    body = hook_request([med_request("mr-1", concept("rxnorm", "197989"))])
    body["context"]["userId"] = "not a reference"
    with pytest.raises(InvalidRequest) as caught:
        parse_hook_request(body)
    assert caught.value.expression == "$.context.userId"
