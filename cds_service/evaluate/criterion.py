"""A policy's criteria tree, as read from its file in cards/."""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
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
