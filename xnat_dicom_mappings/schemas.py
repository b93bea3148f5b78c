"""Marshmallow schemas of the API: rule bodies, query arguments, bundles and documented responses."""

from __future__ import annotations

import re

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, pre_load, validates_schema
from marshmallow.validate import Range

from . import tags
from .errors import TagSyntaxError
from .models import FIELD_NAME_MAX_LENGTH, PROJECT_MAX_LENGTH
from .rules import CONFLICT_POLICIES, FIELD_TYPES, PROJECT, SITE, Rule

#: A field name: lowercase letters, digits, "_" and "-", starting with a letter.
FIELD_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_-]*$")

#: Keys that XNAT's JSON of a rule carries beyond the seven rule keys, plus the
#: keys this API adds to its responses. A body may contain them, so a client
#: can send back a rule it read; their values are ignored.
READ_ONLY_KEYS = ("enabled", "created", "timestamp", "disabled", "version", "warnings")

#: Largest rule id: the id column is a 32-bit signed integer on every database.
MAX_RULE_ID = 2**31 - 1

#: Largest page number, so that the row offset of a page always fits a 64-bit integer.
MAX_PAGE = 10**9

RULE_KEYS = (
    "id", "scope", "scopeObjectId", "fieldName", "fieldType", "dicomTag", "schemaElement", "conflictPolicy",
)

#: Characters that no text value of the API may contain: the C0 and C1 control
#: characters, DEL, and the UTF-16 surrogates that a JSON ``\uD800`` escape
#: can produce unpaired. PostgreSQL rejects NUL in text, neither database can
#: encode an unpaired surrogate as UTF-8, and none of them belongs in a project
#: ID, xsi type, field name, tag expression or keyword.
FORBIDDEN_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def forbidden_character_error(name: str, text: str) -> str | None:
    """Return the error message for the first forbidden character in ``text``, or ``None`` when it has none."""
    match = FORBIDDEN_CHARACTERS.search(text)
    if match is None:
        return None

    code = ord(match.group())
    kind = "an unpaired surrogate" if 0xD800 <= code <= 0xDFFF else "a control character"
    return f"Invalid {name}: character {match.start() + 1} is U+{code:04X}, {kind}; remove it."


def _string_errors(example: str) -> dict:
    return {"invalid": f"Must be a JSON string, such as {example}."}


class StrictInteger(fields.Integer):
    """An integer that must be a JSON number; rejects booleans and numeric strings."""

    def __init__(self, **kwargs):
        super().__init__(strict=True, **kwargs)

    def _validated(self, value):
        if isinstance(value, bool):
            raise self.make_error("invalid")
        return super()._validated(value)


class Text(fields.String):
    """A string without the characters of :data:`FORBIDDEN_CHARACTERS`."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        message = forbidden_character_error(self.data_key or attr or self.name, text)
        if message:
            raise ValidationError(message)
        return text


class ScopeField(Text):
    """``site`` or ``project`` in any letter case, loaded as XNAT spells it."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs).strip().lower()
        if text == "site":
            return SITE
        if text == "project":
            return PROJECT
        raise ValidationError(f"Invalid scope {value!r}: use \"Site\" or \"Project\" (any letter case).")


class FieldTypeField(Text):
    """One of :data:`~xnat_dicom_mappings.rules.FIELD_TYPES`, any letter case, loaded in lowercase."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs).strip().lower()
        if text not in FIELD_TYPES:
            raise ValidationError(f"Invalid fieldType {value!r}: use one of {', '.join(FIELD_TYPES)}.")
        return text


class ConflictPolicyField(Text):
    """One of :data:`~xnat_dicom_mappings.rules.CONFLICT_POLICIES`, any letter case."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs).strip().lower()
        if text not in CONFLICT_POLICIES:
            raise ValidationError(
                f"Invalid conflictPolicy {value!r}: use one of {', '.join(CONFLICT_POLICIES)}."
            )
        return text


class DicomTagField(Text):
    """A tag expression of :mod:`~xnat_dicom_mappings.tags`, loaded in its canonical form."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return tags.parse_tag(text).canonical
        except TagSyntaxError as exc:
            raise ValidationError(str(exc)) from exc


class FieldNameField(Text):
    """A field name matching :data:`FIELD_NAME_PATTERN`, at most FIELD_NAME_MAX_LENGTH characters."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if not text:
            raise ValidationError("Invalid fieldName '': give the name of the custom field, such as 'weight'.")
        if len(text) > FIELD_NAME_MAX_LENGTH:
            raise ValidationError(
                f"Invalid fieldName {text!r}: it has {len(text)} characters, at most {FIELD_NAME_MAX_LENGTH} are allowed."
            )
        if not FIELD_NAME_PATTERN.match(text):
            suggestion = re.sub(r"[^a-z0-9_-]", "_", text.lower()).lstrip("0123456789_-") or "field"
            raise ValidationError(
                f"Invalid fieldName {text!r}: use lowercase letters, digits, '_' and '-', "
                f"starting with a letter, such as {suggestion!r}."
            )
        return text


class SchemaElementField(Text):
    """A concrete xsi type known to the host, any letter case, loaded in its canonical spelling."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        return canonical_schema_element(self.root.host, text)


def canonical_schema_element(host, text: str) -> str:
    """Return the canonical spelling of a concrete xsi type, or raise ValidationError.

    An abstract parent such as ``xnat:imageSessionData`` is rejected with the
    concrete types to use, because a rule on a parent type never applies.
    """
    from .catalogue import ABSTRACT_TYPES

    elements = host.schema_elements()
    by_lower = {name.lower(): name for name in elements}
    if text.lower() in by_lower:
        return by_lower[text.lower()]

    abstract = {name.lower(): (name, level) for name, level in ABSTRACT_TYPES.items()}
    if text.lower() in abstract:
        name, level = abstract[text.lower()]
        concrete = sorted(n for n, lvl in elements.items() if lvl == level)
        raise ValidationError(
            f"Invalid schemaElement {text!r}: {name} is an abstract parent type, and rules are "
            f"matched on the exact type of each {level} without inheritance. Create one rule per "
            f"concrete {level} type instead: {', '.join(concrete)}."
        )

    raise ValidationError(
        f"Unknown schemaElement {text!r}: use a concrete session or scan xsi type such as "
        f"xnat:mrSessionData or xnat:mrScanData (any letter case)."
    )


#: Example values that error messages offer as the fix, by key.
EXAMPLES = {
    "scope": '"Site" or "Project"',
    "scopeObjectId": '"ProjectA"',
    "fieldName": '"weight"',
    "fieldType": '"float"',
    "dicomTag": '"0x00101030"',
    "schemaElement": '"xnat:mrSessionData"',
    "conflictPolicy": '"unique"',
    "project": '"ProjectA"',
    "id": "a whole number, or 0 for a new rule",
}


def _explained(messages: dict, data, accepted: list[str]) -> dict:
    """Return ``messages`` with marshmallow's generic texts replaced by ones that name the value and the fix."""
    explained = {}
    for key, texts in messages.items():
        if not isinstance(texts, list):
            explained[key] = texts
            continue

        value = data.get(key) if hasattr(data, "get") else None
        example = EXAMPLES.get(key, "a value")
        rewritten = []
        for text in texts:
            if text == "Missing data for required field.":
                text = f"{key} is missing; give it, for example {example}."
            elif text == "Field may not be null.":
                text = f"{key} may not be null; give it, for example {example}."
            elif text == "Not a valid integer.":
                text = f"Invalid {key} {value!r}: give a whole number such as 12 (a JSON number in a body, not a string)."
            elif text == "Not a valid boolean.":
                text = f"Invalid {key} {value!r}: give true or false."
            elif text == "Unknown query argument.":
                text = f"Unknown query argument {key!r}; this route accepts {', '.join(accepted) or 'none'}."
            rewritten.append(text)
        explained[key] = rewritten
    return explained


class ExplainedErrors:
    """Mixin that rewrites marshmallow's generic error texts through :func:`_explained`."""

    def handle_error(self, error, data, *, many, **kwargs):
        if isinstance(error.messages, dict):
            accepted = sorted(
                field.data_key or name for name, field in self.fields.items()
                if name not in ("xnat_csrf", "format", "cache_buster")
            )
            raise ValidationError(_explained(error.messages, data, accepted)) from error


class RuleSchema(ExplainedErrors, Schema):
    """A rule in a request body: XNAT's seven keys plus the optional ``conflictPolicy``.

    Loads to a :class:`~xnat_dicom_mappings.rules.Rule` with every value in
    canonical form. ``host`` provides the projects and xsi types that exist
    (:class:`~xnat_dicom_mappings.host.DefaultHost` when not given).
    """

    class Meta:
        unknown = RAISE

    error_messages = {
        "unknown": "Unknown key. A rule has the keys " + ", ".join(RULE_KEYS) + ".",
        "type": "A rule must be a JSON object.",
    }

    id = StrictInteger(allow_none=True, load_default=None, validate=Range(min=0, max=MAX_RULE_ID), metadata={"description": "Rule id; absent or 0 for a new rule."})
    scope = ScopeField(required=True, error_messages=_string_errors('"Site" or "Project"'),
                       metadata={"enum": [SITE, PROJECT], "description": "Site or Project, any letter case on input."})
    scopeObjectId = Text(allow_none=True, load_default=None, error_messages=_string_errors('"ProjectA"'),
                                  metadata={"description": "Project ID for project rules; empty or null for site rules."})
    fieldName = FieldNameField(required=True, error_messages=_string_errors('"weight"'),
                               metadata={"pattern": FIELD_NAME_PATTERN.pattern, "maxLength": FIELD_NAME_MAX_LENGTH})
    fieldType = FieldTypeField(required=True, error_messages=_string_errors('"float"'),
                               metadata={"enum": list(FIELD_TYPES)})
    dicomTag = DicomTagField(required=True, error_messages=_string_errors('"0x00101030"'),
                             metadata={"description": "Tag expression; stored and returned in canonical form such as 0x00101030."})
    schemaElement = SchemaElementField(required=True, error_messages=_string_errors('"xnat:mrSessionData"'),
                                       metadata={"description": "Concrete session or scan xsi type."})
    conflictPolicy = ConflictPolicyField(load_default="unique", error_messages=_string_errors('"unique"'),
                                         metadata={"enum": list(CONFLICT_POLICIES)})

    enabled = fields.Raw(load_only=True, metadata={"description": "XNAT entity key; ignored."})
    created = fields.Raw(load_only=True, metadata={"description": "XNAT entity key; ignored."})
    timestamp = fields.Raw(load_only=True, metadata={"description": "XNAT entity key; ignored."})
    disabled = fields.Raw(load_only=True, metadata={"description": "XNAT entity key; ignored."})
    version = fields.Raw(load_only=True, metadata={"description": "Returned by this API; ignored on input, use If-Match."})
    warnings = fields.Raw(load_only=True, metadata={"description": "Returned by this API; ignored on input."})

    def __init__(self, *, host=None, **kwargs):
        super().__init__(**kwargs)
        if host is None:
            from .host import DefaultHost

            host = DefaultHost()
        self.host = host

    @validates_schema(skip_on_field_errors=False)
    def check_project(self, data, **kwargs):
        scope = data.get("scope")
        project = data.get("scopeObjectId")
        project = project.strip() if isinstance(project, str) else project

        if scope == SITE and project:
            raise ValidationError(
                f"Invalid scopeObjectId {project!r}: a site rule applies to every project, so leave "
                "scopeObjectId empty, or set scope to \"Project\".",
                field_name="scopeObjectId",
            )

        if scope == PROJECT:
            if not project:
                raise ValidationError(
                    "Missing scopeObjectId: a project rule needs the ID of its project.",
                    field_name="scopeObjectId",
                )
            if len(project) > PROJECT_MAX_LENGTH:
                raise ValidationError(
                    f"Invalid scopeObjectId: a project ID has at most {PROJECT_MAX_LENGTH} characters.",
                    field_name="scopeObjectId",
                )
            canonical = self.host.canonical_project(project)
            if canonical is None:
                raise ValidationError(
                    f"Unknown project {project!r}: create the project first, or check the project ID.",
                    field_name="scopeObjectId",
                )
            data["scopeObjectId"] = canonical

    @post_load
    def make_rule(self, data, **kwargs) -> Rule:
        return Rule(
            id=data.get("id") or None,
            scope=data["scope"],
            scope_object_id=data["scopeObjectId"] if data["scope"] == PROJECT else None,
            field_name=data["fieldName"],
            field_type=data["fieldType"],
            dicom_tag=data["dicomTag"],
            schema_element=data["schemaElement"],
            conflict_policy=data["conflictPolicy"],
        )


def rule_warnings(host, rule: Rule) -> list[str]:
    """Return warnings about a valid rule, such as a session field with no custom variable."""
    warnings = []
    if host.schema_elements().get(rule.schema_element) == "session":
        defined = host.has_custom_variable(rule.scope_object_id, rule.schema_element, rule.field_name)
        if defined is False:
            where = f"project {rule.scope_object_id}" if rule.scope == PROJECT else "any project"
            warnings.append(
                f"No custom variable {rule.field_name!r} is defined for {rule.schema_element} in {where}: "
                "the rule is stored and archived sessions get the value, but the host shows it on "
                "session pages only once that custom variable is defined."
            )
    return warnings


class QuerySchema(ExplainedErrors, Schema):
    """Base of the query argument schemas: unknown arguments are rejected.

    The arguments that XNAT's own clients add to every request (``XNAT_CSRF``,
    ``format`` and the cache buster ``_``) are accepted and ignored.
    """

    class Meta:
        unknown = RAISE

    error_messages = {"unknown": "Unknown query argument."}

    xnat_csrf = fields.Raw(data_key="XNAT_CSRF", load_only=True)
    format = fields.Raw(load_only=True)
    cache_buster = fields.Raw(data_key="_", load_only=True)

    @pre_load
    def reject_forbidden_characters(self, data, **kwargs):
        """Reject every argument, known or not, whose value contains a character of :data:`FORBIDDEN_CHARACTERS`."""
        errors = {}
        for name, value in data.items():
            message = forbidden_character_error(name, value) if isinstance(value, str) else None
            if message:
                errors[name] = [message]
        if errors:
            raise ValidationError(errors)
        return data

    def load_args(self, args) -> dict:
        """Load a MultiDict of query arguments; the first value of a repeated argument wins."""
        data = self.load(args.to_dict(flat=True))
        for name in ("xnat_csrf", "format", "cache_buster"):
            data.pop(name, None)
        return data


class PagingArgs(QuerySchema):
    page = fields.Integer(
        load_default=None,
        validate=Range(min=1, max=MAX_PAGE, error="Invalid page {input}: give a page number from {min} to {max}."),
        metadata={"description": "1-based page number."},
    )
    pageSize = fields.Integer(
        load_default=None,
        validate=Range(min=1, error="Invalid pageSize {input}: give at least 1 (at most DICOM_MAPPINGS_MAX_PAGE_SIZE, 1000 by default)."),
        metadata={"description": "Rules per page, at most DICOM_MAPPINGS_MAX_PAGE_SIZE (1000 by default)."},
    )


class ListArgs(PagingArgs):
    scope = fields.String(load_default=None, metadata={"description": "Site or Project, any letter case."})
    project = fields.String(load_default=None, metadata={"description": "Project ID of project rules."})
    schemaElement = fields.String(load_default=None)
    fieldName = fields.String(load_default=None)
    dicomTag = fields.String(load_default=None, metadata={"description": "Any accepted tag form."})


class EffectiveArgs(QuerySchema):
    project = fields.String(required=True, metadata={"description": "Project ID."})
    schemaElement = fields.String(load_default=None)


class ImportArgs(QuerySchema):
    dryRun = fields.Boolean(load_default=False)
    mode = fields.String(load_default="merge", metadata={"enum": ["merge", "replace"]})


class EmptyArgs(QuerySchema):
    pass


# -- schemas that only document responses in the OpenAPI document -------------


class RuleResponseSchema(Schema):
    id = fields.Integer()
    scope = fields.String(metadata={"enum": [SITE, PROJECT]})
    scopeObjectId = Text(allow_none=True)
    fieldName = fields.String()
    fieldType = fields.String(metadata={"enum": list(FIELD_TYPES)})
    dicomTag = fields.String()
    schemaElement = fields.String()
    conflictPolicy = fields.String(metadata={"enum": list(CONFLICT_POLICIES)})
    version = fields.Integer(metadata={"description": "Raised by one on every change; the ETag names it."})
    warnings = fields.List(fields.String(), metadata={"description": "Present only when not empty."})


class EffectiveRuleSchema(RuleResponseSchema):
    source = fields.String(metadata={"enum": ["site", "project"]})
    overrides = fields.List(fields.Integer(), metadata={"description": "Ids of the site rules this project rule replaces."})


class HistoryEntrySchema(Schema):
    id = fields.Integer()
    ruleId = fields.Integer()
    action = fields.String(metadata={"enum": ["create", "update", "delete"]})
    user = fields.String()
    timestamp = fields.DateTime()
    before = fields.Nested(RuleResponseSchema, allow_none=True)
    after = fields.Nested(RuleResponseSchema, allow_none=True)


class BundleSchema(Schema):
    format = fields.String(metadata={"enum": ["xnat-dicom-mappings"]})
    formatVersion = fields.Integer()
    exported = fields.DateTime()
    rules = fields.List(fields.Nested(RuleResponseSchema))


class ImportResultSchema(Schema):
    dryRun = fields.Boolean()
    mode = fields.String(metadata={"enum": ["merge", "replace"]})
    summary = fields.Dict(keys=fields.String(), values=fields.Integer())
    create = fields.List(fields.Nested(RuleResponseSchema))
    update = fields.List(fields.Dict())
    delete = fields.List(fields.Nested(RuleResponseSchema))
    unchanged = fields.List(fields.Integer())


class ErrorSchema(Schema):
    status = fields.Integer(required=True)
    error = fields.String(required=True, metadata={"description": "HTTP reason phrase."})
    message = fields.String(required=True)
    errors = fields.Dict(metadata={"description": "Field name to messages; only on validation failures."})
    existingId = fields.Integer(metadata={"description": "Id of the stored rule that a 409 conflicts with."})
