"""CDS Hooks feedback validated to the spec before anything is stored."""
from __future__ import annotations

import pytest

URL = "/cds-services/prior-auth-order-sign/feedback"


def _item(**changes) -> dict:
    item = {"card": "9b1f7c1e-0000-4000-8000-0000000000aa", "outcome": "accepted",
            "acceptedSuggestions": [{"id": "e56e1945-20b3-4393-8503-a1a20fd73152"}],
            "outcomeTimestamp": "2026-11-26T09:30:00.123Z"}
    item.update(changes)
    return {key: value for key, value in item.items() if value is not None}


@pytest.mark.parametrize(("item", "where"), [
    (_item(acceptedSuggestions=None), "$.feedback[0].acceptedSuggestions"),
    (_item(acceptedSuggestions=[]), "$.feedback[0].acceptedSuggestions"),
    (_item(acceptedSuggestions=[{}]), "$.feedback[0].acceptedSuggestions[0].id"),
    (_item(outcome="ignored"), "$.feedback[0].outcome"),
    (_item(card=None), "$.feedback[0].card"),
    (_item(outcomeTimestamp="2026-11-26"), "$.feedback[0].outcomeTimestamp"),
    (_item(outcomeTimestamp="2026-11-26T09:30:00"), "$.feedback[0].outcomeTimestamp"),
    (_item(outcomeTimestamp="2026-13-26T09:30:00Z"), "$.feedback[0].outcomeTimestamp"),
    (_item(outcome="overridden", acceptedSuggestions=None, overrideReason={"reason": {"code": "x"}}),
     "$.feedback[0].overrideReason.reason.system"),
    (_item(outcome="overridden", acceptedSuggestions=[{"id": "s"}]), "$.feedback[0].acceptedSuggestions"),
])
def test_feedback_breaking_the_spec_is_400_naming_the_field(client, item, where):
    response = client.post(URL, json={"feedback": [item]})
    assert response.status_code == 400
    assert response.get_json()["issue"][0]["expression"] == [where]


def test_an_empty_or_missing_feedback_array_is_400(client):
    assert client.post(URL, json={"feedback": []}).status_code == 400
    assert client.post(URL, json={"cards": []}).status_code == 400


def test_override_with_reason_and_comment_is_stored(client):
    item = _item(outcome="overridden", acceptedSuggestions=None, overrideReason={
        "reason": {"system": "urn:cds-service:override-reason", "code": "pa-submitted"},
        "userComment": "PA request already sent"})
    response = client.post(URL, json={"feedback": [item]})
    assert response.status_code == 200 and response.get_json() == {"received": 1, "stored": 1}


def test_feedback_for_an_unknown_service_is_404(client):
    assert client.post("/cds-services/nope/feedback", json={"feedback": [_item()]}).status_code == 404
