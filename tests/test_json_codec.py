"""orjson where it can, the standard library where only it can: what orjson refuses is decided as before."""
from __future__ import annotations

import json

import pytest

from cds_service import json_codec


def _stdlib(raw: bytes):
    return json.loads(raw)


@pytest.mark.parametrize("raw", [b'"\\ud800"', b"1" + b"0" * 400])
def test_what_orjson_refuses_goes_to_the_fallback(raw: bytes):
    assert json_codec.loads(raw, _stdlib) == json.loads(raw)


def test_the_fallback_raises_its_own_error():
    def refuse(raw: bytes):
        raise ValueError("refused by the caller")

    with pytest.raises(ValueError, match="refused by the caller"):
        json_codec.loads(b"NaN", refuse)


def test_values_orjson_cannot_write_are_written_by_the_standard_library():
    value = {"big": 2**70, "text": "é"}
    assert json.loads(json_codec.dumps_text(value)) == value


def test_responses_keep_the_key_order_they_were_built_in(client):
    from cds_service.discovery import discovery_document

    response = client.get("/cds-services")
    assert response.status_code == 200
    built = discovery_document()["services"][0]
    assert list(json.loads(response.get_data())["services"][0]) == list(built)
