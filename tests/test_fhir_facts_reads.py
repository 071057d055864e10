"""fhir_facts validates only the elements in READS: every element a reader takes facts from must be listed there.

The test reads fhir_facts' own source: in each function, the attributes read from `res` (the validated model)
must be in READS of the model that function validates, helpers it hands `res` to included.
"""
from __future__ import annotations

import ast
import inspect

from cds_service import fhir_facts
from cds_service.fhir_facts import READS, _read_part
from tests.builders import observation

MODELS = {name: getattr(fhir_facts, name) for name in READS}


def _functions(tree: ast.AST) -> dict[str, ast.FunctionDef]:
    return {node.name: node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}


def _res_attributes(fn: ast.FunctionDef) -> set[str]:
    return {node.attr for node in ast.walk(fn)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "res"}


def _validated_model(fn: ast.FunctionDef) -> str | None:
    for node in ast.walk(fn):
        if (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "validate" and node.args
                and isinstance(node.args[0], ast.Name) and node.args[0].id in MODELS):
            return node.args[0].id
    return None


def _helpers_given_res(fn: ast.FunctionDef, functions: dict[str, ast.FunctionDef]) -> set[str]:
    out = set()
    for node in ast.walk(fn):
        if isinstance(node, ast.Call) and any(isinstance(a, ast.Name) and a.id == "res" for a in node.args):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            if name in functions:
                out.add(name)
    return out


def test_every_element_a_reader_reads_is_validated():
    functions = _functions(ast.parse(inspect.getsource(fhir_facts)))
    checked = set()
    for fn in functions.values():
        model_name = _validated_model(fn)
        if model_name is None:
            continue
        attributes = _res_attributes(fn)
        for helper in _helpers_given_res(fn, functions):
            attributes |= _res_attributes(functions[helper])
        fields = MODELS[model_name].model_fields
        elements = {fields[a].alias or a for a in attributes if a in fields}
        assert elements <= READS[model_name], f"{fn.name} reads {sorted(elements - READS[model_name])} of " \
                                              f"{model_name}; add them to fhir_facts.READS"
        checked.add(model_name)
    assert checked == set(READS)


def test_the_read_part_keeps_required_elements_and_primitive_extensions():
    raw = observation("o1", "loinc", "29463-7", "2026-01-01", 70, "kg")
    raw["category"] = [{"coding": [{"code": "vital-signs"}]}]
    raw["_status"] = {"extension": []}
    part = _read_part(fhir_facts.Observation, raw)
    assert "category" not in part and "subject" not in part
    assert {"resourceType", "id", "status", "_status", "code", "valueQuantity", "effectiveDateTime"} <= set(part)
    med_admin_part = _read_part(fhir_facts.MedicationAdministration, {"resourceType": "MedicationAdministration",
                                                                      "subject": {"reference": "Patient/p"},
                                                                      "performer": []})
    assert "subject" in med_admin_part  # required by R4, so validation still holds it to the standard
