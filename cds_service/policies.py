"""The policy library: every file in cards/, validated and compiled once at start-up.

A bad file stops the service from starting with the file, the JSON path and the reason: a
schema violation, an unknown criterion kind or mode, a duplicate clause id, a reference to a value set or
drug the file does not define, or a drug code that two policies claim.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from .errors import PolicyFileError
from .evaluate import kinds as _kinds  # noqa: F401  (registers every kind)
from .evaluate.criterion import Criterion, Predicate, TreeIndex
from .evaluate.registry import GUARD_KINDS, LEAF_KINDS, reads_of
from .fhir_facts import Interest
from .record import normalise_code
from .terminology import DrugGroup, ValueSet

# Params whose string values name a value set, and those that name a drug group of the same file.
VALUE_SET_KEYS = frozenset({"valueSet", "valueSets", "vague", "conflicting", "contradictedBy", "extentValueSets",
                            "stageValueSet"})
DRUG_KEYS = frozenset({"drug", "drugs", "all", "any", "absent"})
# Vital signs every dose clause may read (clauses.md §0.5.1): always kept when screening observations.
VITAL_SIGN_LOINC = ("29463-7", "3141-9", "8302-2", "3137-7", "8277-6", "3140-1")
BASE_READS = ("patient",)


@cache
def policy_validator() -> Draft202012Validator:
    schema = json.loads(resources.files(__package__).joinpath("schemas/policy.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


@dataclass
class Policy:
    """One compiled policy: its routing, vocabularies, criteria roots and decision rules."""

    key: str
    number: str
    title: str
    publisher: str
    data: Mapping[str, Any]
    own_drug: DrugGroup
    value_sets: dict[str, ValueSet]
    drugs: dict[str, DrugGroup]
    roots: dict[str, Criterion]
    nodes: dict[str, Criterion]
    parents: dict[str, str] = field(default_factory=dict)
    reads: tuple[str, ...] = ()
    interest: Interest = field(default_factory=Interest)  # the codes and drug names this policy can read
    tree: TreeIndex = field(init=False, repr=False, compare=False)  # each clause's place in the tree, built at load

    def __post_init__(self) -> None:
        self.tree = TreeIndex.build(self.roots.values())

    def ancestors(self, clause_id: str) -> list[str]:
        """Clause ids above this one, nearest first."""
        return list(self.tree.ancestors(clause_id))

    @property
    def decision(self) -> Mapping[str, Any]:
        return self.data["decision"]

    @property
    def phase_rules(self) -> Mapping[str, Any]:
        return self.data["phase"]

    @property
    def canonical_path(self) -> str:
        return f"/fhir/Questionnaire/{self.key}"

    def leaves(self) -> Iterator[Criterion]:
        for root in self.roots.values():
            yield from (n for n in root.walk() if n.is_leaf)


@dataclass
class PolicyLibrary:
    policies: dict[str, Policy] = field(default_factory=dict)
    routing: dict[tuple[str, str], str] = field(default_factory=dict)
    interest: Interest = field(default_factory=Interest)  # what any policy can read
    _interests: dict[frozenset[str], Interest] = field(default_factory=dict, init=False, repr=False)

    def __iter__(self) -> Iterator[Policy]:
        return iter(self.policies.values())

    def interest_for(self, keys: Iterable[str]) -> Interest:
        """What the named policies can read, so a call validates only their data (compiled once per set)."""
        wanted = frozenset(keys)
        if len(wanted) == 1:
            return self.policies[next(iter(wanted))].interest
        if wanted not in self._interests:
            interest = Interest()
            for key in wanted:
                _merge_interest(interest, self.policies[key].interest)
            self._interests[wanted] = interest.compile()
        return self._interests[wanted]


def _refs(params: Any, keys: frozenset[str]) -> Iterator[str]:
    if isinstance(params, Mapping):
        for key, value in params.items():
            if key in keys:
                values = value if isinstance(value, list) else [value]
                for v in values:
                    if isinstance(v, str):
                        yield v
                    elif isinstance(v, Mapping):
                        yield from _refs(v, keys)
            yield from _refs(value, keys) if isinstance(value, Mapping | list) and key not in keys else ()
    elif isinstance(params, list):
        for item in params:
            yield from _refs(item, keys)


def _check_node(node: Criterion, file: str, value_sets: Mapping, drugs: Mapping, seen: set[str]) -> None:
    if node.id in seen:
        raise PolicyFileError(file, node.path, f"clause id {node.id!r} appears twice")
    seen.add(node.id)
    checks: list[tuple[str | None, Mapping, str]] = [(node.kind, node.params, node.path)]
    for name, pred in (("applies_if", node.applies_if), ("requires", node.requires)):
        if isinstance(pred, Predicate):
            checks.append((pred.kind, pred.params, f"{node.path}.{name}"))
            if pred.kind not in LEAF_KINDS and pred.kind not in GUARD_KINDS:
                raise PolicyFileError(file, f"{node.path}.{name}.kind", f"unknown guard kind {pred.kind!r}")
    if node.derived is not None and node.derived["negates"] == node.id:
        raise PolicyFileError(file, f"{node.path}.derived", "a derived row cannot negate itself")
    if node.kind is not None and node.kind not in LEAF_KINDS:
        raise PolicyFileError(file, f"{node.path}.kind", f"unknown criterion kind {node.kind!r}")
    for kind, params, path in checks:
        _check_mode(kind, params, file, path)
        for ref in _refs(params, VALUE_SET_KEYS):
            if ref not in value_sets:
                raise PolicyFileError(file, f"{path}.params", f"unknown value set {ref!r}")
        for ref in _refs(params, DRUG_KEYS):
            if ref != "self" and ref not in drugs:
                raise PolicyFileError(file, f"{path}.params", f"unknown drug group {ref!r}")
    for child in node.children:
        _check_node(child, file, value_sets, drugs, seen)


def _check_mode(kind: str | None, params: Mapping[str, Any], file: str, path: str) -> None:
    """A `mode` the kind does not read would fail only when a request reaches the row: refuse it at load."""
    spec = LEAF_KINDS.get(kind or "")
    if spec is None or spec.modes is None:
        return
    known = ", ".join(sorted(spec.modes))
    if "mode" not in params:
        if spec.mode_required:
            raise PolicyFileError(file, f"{path}.params", f"{kind} needs a mode (one of {known})")
        return
    if params["mode"] not in spec.modes:
        raise PolicyFileError(file, f"{path}.params.mode", f"unknown {kind} mode {params['mode']!r} (one of {known})")


def _check_decision(data: Mapping[str, Any], nodes: Mapping[str, Criterion], file: str) -> None:
    decision = data["decision"]
    ids = []
    for phase in ("initial", "continued"):
        block = decision[phase]
        ids += [(f"$.decision.{phase}.root", block["root"])]
        ids += [(f"$.decision.{phase}.alongside", i) for i in block.get("alongside", ())]
        ids += [(f"$.decision.{phase}.{k}", block[k]) for k in ("referral", "alsoEvaluate") if k in block]
    ids += [("$.decision.exclusions", i) for i in decision.get("exclusions", ())]
    ids += [("$.decision.scope", i) for i in decision.get("scope", ())]
    for path, clause in ids:
        if clause not in nodes:
            raise PolicyFileError(file, path, f"names clause {clause!r}, which is not a top-level criterion")
    for path, vs in [("$.phase.lookback", e["valueSet"]) for e in data["phase"].get("lookback", ())]:
        if vs not in data["valueSets"]:
            raise PolicyFileError(file, path, f"unknown value set {vs!r}")


def compile_policy(data: Mapping[str, Any], file: str) -> Policy:
    """Validate one decoded policy file and compile it; raise PolicyFileError naming what is wrong."""
    errors = sorted(policy_validator().iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        raise PolicyFileError(file, err.json_path, err.message[:300])
    value_sets = {name: ValueSet.compile(name, vs) for name, vs in data["valueSets"].items()}
    drugs = {name: DrugGroup.compile(name, d) for name, d in data["drugs"].items()}
    roots = {}
    seen: set[str] = set()
    for i, raw in enumerate(data["criteria"]):
        node = Criterion.from_json(raw, f"$.criteria[{i}]")
        _check_node(node, file, value_sets, drugs, seen)
        roots[node.id] = node
    for info in data.get("informational", ()):
        if info["id"] in seen:
            raise PolicyFileError(file, "$.informational", f"clause id {info['id']!r} appears twice")
        seen.add(info["id"])
    _check_decision(data, roots, file)
    nodes = {n.id: n for root in roots.values() for n in root.walk()}
    parents = {child.id: n.id for n in nodes.values() for child in n.children}
    for phase in ("initial", "continued"):
        for clause in data["decision"][phase].get("alsoEvaluateUnlessMet", ()):
            if clause not in nodes:
                raise PolicyFileError(file, f"$.decision.{phase}.alsoEvaluateUnlessMet", f"unknown clause {clause!r}")
    for node in nodes.values():
        if node.derived is not None and node.derived["negates"] not in nodes:
            raise PolicyFileError(file, f"{node.path}.derived", f"negates unknown clause {node.derived['negates']!r}")
    reads = set(BASE_READS)
    for node in nodes.values():
        for kind in (node.kind, node.applies_if and node.applies_if.kind, node.requires and node.requires.kind):
            if kind:
                reads.update(reads_of(kind))
    if data["phase"].get("lookback") or data["decision"].get("continued"):
        reads.update(("conditions", "medicationRequests", "medicationAdministrations", "medicationDispenses"))
    return Policy(
        key=data["policy"], number=data["policyNumber"], title=data["title"], publisher=data["publisher"],
        data=data, own_drug=DrugGroup.compile("self", data["drug"]), value_sets=value_sets, drugs=drugs,
        roots=roots, nodes=nodes, parents=parents, reads=tuple(sorted(reads)),
    )


def load_policies(cards_dir: str | Path) -> PolicyLibrary:
    """Load and check every policy file; the first problem found stops the service from starting.

    The compiled library is read-only once built, so apps built from unchanged files share one copy
    (tests build hundreds of apps; a worker builds one).
    """
    files = tuple(sorted(Path(cards_dir).glob("*.json")))
    if not files:
        raise PolicyFileError(str(cards_dir), "$", "no policy files found")
    stamp = tuple((str(p.resolve()), p.stat().st_mtime_ns, p.stat().st_size) for p in files)
    return _load(stamp)


@lru_cache(maxsize=8)
def _load(stamp: tuple[tuple[str, int, int], ...]) -> PolicyLibrary:
    library = PolicyLibrary()
    for path in (Path(entry[0]) for entry in stamp):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise PolicyFileError(str(path), "$", f"not readable JSON: {exc}") from exc
        policy = compile_policy(data, str(path))
        if policy.key != path.stem:
            raise PolicyFileError(str(path), "$.policy", f"{policy.key!r} does not match the file name")
        for code in data["drug"]["codes"]:
            key = (code["system"], normalise_code(code["system"], code["code"]))
            if key in library.routing and library.routing[key] != policy.key:
                raise PolicyFileError(str(path), "$.drug.codes",
                                      f"code {key[1]} is routed by {library.routing[key]} too")
            library.routing[key] = policy.key
        policy.interest = _policy_interest(policy)
        library.policies[policy.key] = policy
        _merge_interest(library.interest, policy.interest)
    library.interest.compile()
    return library


def _policy_interest(policy: Policy) -> Interest:
    interest = Interest()
    for vs in policy.value_sets.values():
        interest.codes.update(vs.codes)
        interest.icd_prefixes.update(vs.prefixes)
    for group in [policy.own_drug, *policy.drugs.values()]:
        interest.codes.update(group.codes)
        interest.names.update(group.names)
    for loinc in VITAL_SIGN_LOINC:
        interest.codes.add(("loinc", loinc))
    return interest.compile()


def _merge_interest(into: Interest, other: Interest) -> None:
    into.codes.update(other.codes)
    into.icd_prefixes.update(other.icd_prefixes)
    into.names.update(other.names)
