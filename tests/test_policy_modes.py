"""A `mode` no evaluator reads stops start-up with the file, the JSON path and the reason (not the first request)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cds_service.errors import PolicyFileError
from cds_service.policies import load_policies
from tests.conftest import ROOT, make_app


def _cards_with(tmp_path: Path, edit) -> Path:
    """A copy of cards/ whose ixabepilone file has been changed by `edit` (given its decoded JSON)."""
    cards = tmp_path / "cards"
    shutil.copytree(ROOT / "cards", cards)
    path = cards / "ixabepilone.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    edit(data)
    path.write_text(json.dumps(data), encoding="utf-8")
    return cards


def _d_i(data: dict) -> dict:
    """Ixabepilone D.i, the ANC/platelet panel: $.criteria[3].any_of[0]."""
    node = data["criteria"][3]["any_of"][0]
    assert node["id"] == "D.i" and node["kind"] == "lab_threshold"
    return node


def test_an_unknown_lab_mode_names_file_path_and_reason(tmp_path):
    cards = _cards_with(tmp_path, lambda d: _d_i(d)["params"].update(mode="panels"))
    with pytest.raises(PolicyFileError) as caught:
        load_policies(cards)
    err = caught.value
    assert err.file.endswith("ixabepilone.json")
    assert err.path == "$.criteria[3].any_of[0].params.mode"
    assert "unknown lab_threshold mode 'panels'" in err.reason and "panel" in err.reason


def test_a_lab_row_without_a_mode_is_refused(tmp_path):
    cards = _cards_with(tmp_path, lambda d: _d_i(d)["params"].pop("mode"))
    with pytest.raises(PolicyFileError, match=r"\$\.criteria\[3\]\.any_of\[0\]\.params: lab_threshold needs a mode"):
        load_policies(cards)


def test_a_guard_with_an_unknown_mode_is_refused(tmp_path):
    def edit(data: dict) -> None:
        exceptions = data["criteria"][4]["all_of"][0]["all_of"][2]  # L.B.exceptions.2
        guard = exceptions["all_of"][0]["applies_if"]
        assert exceptions["id"] == "L.B.exceptions.2" and guard["kind"] == "lab_threshold"
        guard["params"]["mode"] = "uln"
    with pytest.raises(PolicyFileError, match=r"all_of\[0\]\.applies_if\.params\.mode: unknown lab_threshold mode"):
        load_policies(_cards_with(tmp_path, edit))


def test_the_app_does_not_start_on_an_unknown_dose_mode(tmp_path, sqlite_url):
    def edit(data: dict) -> None:
        data["criteria"][4]["all_of"][0]["all_of"][0]["params"]["mode"] = "rolling"  # L.B.dosing.1
    with pytest.raises(PolicyFileError, match="unknown dose_per_interval mode 'rolling'"):
        make_app(sqlite_url, CDS_CARDS_DIR=str(_cards_with(tmp_path, edit)))
