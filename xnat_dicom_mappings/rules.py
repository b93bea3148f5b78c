"""Mapping rules as plain values, and the precedence between site and project rules.

Nothing here touches Flask or a database: the extractor, the command line and
the stored rules all share this one representation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

SITE = "Site"
PROJECT = "Project"

FIELD_TYPES = ("string", "integer", "float", "boolean", "date", "time", "datetime")
CONFLICT_POLICIES = ("unique", "first", "last", "min", "max", "all")


@dataclass(frozen=True)
class Rule:
    """One mapping: copy ``dicom_tag`` into ``field_name`` of ``schema_element``.

    ``dicom_tag`` is the canonical tag expression (see :mod:`.tags`);
    ``scope_object_id`` is the project ID for project rules and ``None`` for
    site rules.
    """

    scope: str
    field_name: str
    field_type: str
    dicom_tag: str
    schema_element: str
    scope_object_id: str | None = None
    conflict_policy: str = "unique"
    id: int | None = None
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def is_site(self) -> bool:
        return self.scope == SITE

    @classmethod
    def from_json(cls, data: dict) -> "Rule":
        """Build a rule from the API's JSON keys, without validating them."""
        scope = str(data.get("scope") or "").strip().lower()
        project = data.get("scopeObjectId") or None
        return cls(
            id=data.get("id") or None,
            scope=PROJECT if scope == "project" else SITE,
            scope_object_id=project if scope == "project" else None,
            field_name=data["fieldName"],
            field_type=str(data["fieldType"]).lower(),
            dicom_tag=data["dicomTag"],
            schema_element=data["schemaElement"],
            conflict_policy=data.get("conflictPolicy") or "unique",
        )

    def to_json(self) -> dict:
        """Return the rule with XNAT's seven keys plus ``conflictPolicy``."""
        return {
            "id": self.id,
            "scope": self.scope,
            "scopeObjectId": self.scope_object_id if self.scope == PROJECT else None,
            "fieldName": self.field_name,
            "fieldType": self.field_type,
            "dicomTag": self.dicom_tag,
            "schemaElement": self.schema_element,
            "conflictPolicy": self.conflict_policy,
        }


@dataclass(frozen=True)
class EffectiveRule:
    """A rule in force for one project, with where it came from."""

    rule: Rule
    source: str  # "site" or "project"
    overrides: tuple[int, ...] = ()  # ids of the site rules it replaces


def effective_rules(rules: Iterable[Rule], project: str | None) -> list[EffectiveRule]:
    """Return the rules in force for ``project`` after precedence.

    Site rules apply everywhere. A rule of ``project`` replaces every site rule
    with the same schema element and the same field name or the same DICOM
    tag, so one field never has two competing sources. With ``project`` None
    only site rules apply. Order: by schema element, field name, then id.
    """
    site = [r for r in rules if r.is_site]
    own = [r for r in rules if not r.is_site and project is not None and r.scope_object_id == project]

    replaced: dict[int, list[int]] = {}
    kept_site = []
    for site_rule in site:
        winners = [
            p for p in own
            if p.schema_element == site_rule.schema_element
            and (p.field_name == site_rule.field_name or p.dicom_tag == site_rule.dicom_tag)
        ]
        if winners:
            for winner in winners:
                replaced.setdefault(id(winner), []).append(site_rule.id)
        else:
            kept_site.append(site_rule)

    result = [EffectiveRule(r, "site") for r in kept_site]
    result += [EffectiveRule(r, "project", tuple(replaced.get(id(r), ()))) for r in own]
    result.sort(key=lambda e: (e.rule.schema_element, e.rule.field_name, e.rule.id or 0))
    return result


def rules_for_type(effective: Iterable[EffectiveRule], xsi_type: str) -> list[Rule]:
    """Return the rules whose schema element is exactly ``xsi_type`` (no inheritance)."""
    return [e.rule for e in effective if e.rule.schema_element == xsi_type]


def json_type_name(value) -> str:
    """Return the JSON name of a parsed value's type, such as "object" for a dict.

    Messages about a rule body or a rules file use it, so that they speak
    JSON's words instead of Python's type names.
    """
    kinds = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return kinds.get(type(value), "number")
