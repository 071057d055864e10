"""A policy's criteria tree, as read from its file in cards/."""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any


@dataclass(frozen=True)
class Predicate:
    """A guard on a node (`applies_if` or `requires`): a leaf or guard kind with its params."""

    kind: str
    params: Mapping[str, Any]
    negate: bool = False
    text: str = ""
    source: str = ""

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Predicate | None:
        if not data:
            return None
        return cls(data["kind"], data.get("params", {}), bool(data.get("negate")), data.get("text", ""),
                   data.get("source", ""))

    @cached_property
    def probe(self) -> Criterion:
        """The guard as a leaf criterion, for a guard naming a leaf kind: built once, not on every evaluation."""
        return Criterion(id=f"guard:{self.kind}", text=self.text or self.kind, kind=self.kind, params=self.params)


@dataclass(frozen=True)
class Criterion:
    """One node: a group (`all_of` / `any_of`) or a leaf of a known kind, with its clause id and text."""

    id: str
    text: str
    source: str = ""
    note: str = ""
    role: str | None = None
    combinator: str | None = None
    children: tuple[Criterion, ...] = ()
    kind: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    applies_if: Predicate | None = None
    requires: Predicate | None = None
    question: Mapping[str, Any] | None = None
    suggestion: Mapping[str, Any] | None = None
    derived: Mapping[str, Any] | None = None
    path: str = "$"

    @classmethod
    def from_json(cls, data: Mapping[str, Any], path: str = "$") -> Criterion:
        combinator = "all_of" if "all_of" in data else "any_of" if "any_of" in data else None
        children = tuple(cls.from_json(child, f"{path}.{combinator}[{i}]")
                         for i, child in enumerate(data.get(combinator, ()) if combinator else ()))
        return cls(
            id=data["id"], text=data["text"], source=data.get("source", ""), note=data.get("note", ""),
            role=data.get("role"), combinator=combinator, children=children, kind=data.get("kind"),
            params=data.get("params", {}), applies_if=Predicate.from_json(data.get("applies_if")),
            requires=Predicate.from_json(data.get("requires")), question=data.get("question"),
            suggestion=data.get("suggestion"), derived=data.get("derived"), path=path,
        )

    @property
    def is_leaf(self) -> bool:
        return self.kind is not None

    def walk(self) -> Iterator[Criterion]:
        """This node and every node below it, parents first."""
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass(frozen=True)
class TreeIndex:
    """Where each clause sits in a policy's tree, worked out once when the policy loads.

    The evaluator and the card renderer ask these questions of every trace entry; walking parent links (and
    the branches beside them) each time made a request's work grow with the square of its trace.
    """

    lineage: Mapping[str, tuple[str, ...]]  # the clause itself, then its ancestors nearest first
    indications: Mapping[str, tuple[str, ...]]  # indication rows heading a branch the clause lies on
    _within: dict[tuple[str, ...], frozenset[str]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def build(cls, roots: Iterable[Criterion]) -> TreeIndex:
        lineage: dict[str, tuple[str, ...]] = {}
        indications: dict[str, tuple[str, ...]] = {}

        def visit(node: Criterion, above: tuple[str, ...], heads: tuple[str, ...]) -> None:
            lineage[node.id] = (node.id, *above)
            indications[node.id] = heads
            below = tuple(c.id for c in node.children if c.role == "indication")
            for child in node.children:
                visit(child, lineage[node.id], below + heads)

        for root in roots:
            visit(root, (), ())
        return cls(lineage, indications)

    def ancestors(self, clause_id: str) -> tuple[str, ...]:
        """Clause ids above this one, nearest first (none for a clause outside the tree)."""
        return self.lineage.get(clause_id, (clause_id,))[1:]

    def within(self, roots: tuple[str, ...]) -> frozenset[str]:
        """Every clause at or below one of these roots; memoised, since a policy names a few fixed root lists."""
        found = self._within.get(roots)
        if found is None:
            wanted = frozenset(roots)
            found = frozenset(c for c, line in self.lineage.items() if not wanted.isdisjoint(line))
            self._within[roots] = found
        return found
