"""The segment rule language (crm_store.segments) as JSON Schema, for the API's document.

Kept beside the compiler and built from its own constants, so the two say
the same thing: a rule the schema allows compiles.  The schema is stricter
in places, never looser: plain fields compare with text (a number against an
e-mail column is an error on PostgreSQL), ``scores.<name>`` is left out (it
exists only where insights registered its scores), and nesting deeper than
``MAX_DEPTH`` is refused though no schema can count it.
"""

from __future__ import annotations

from typing import Any

from crm_store.segments import KEY, MAX_COUNT, MAX_DAYS, MAX_DEPTH, PLAIN_FIELDS, TIME_FIELDS

#: The name the rule has among the document's components; its parts are ``SegmentRule<Part>``.
NAME = "SegmentRule"
COMPARE = ["eq", "ne", "lt", "lte", "gt", "gte"]

TEXT: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 255}
DAYS: dict[str, Any] = {"type": "number", "minimum": 0, "maximum": MAX_DAYS}


def _object(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def _conditions(field: dict[str, Any], value: dict[str, Any], *, text: bool, time: bool) -> list[dict[str, Any]]:
    """``{"field", "op", "value"}`` for one kind of field: what each operator takes there."""
    parts = [_object(["field", "op", "value"], field=field, op={"enum": COMPARE}, value=value),
             _object(["field", "op", "value"], field=field, op={"const": "in"},
                     value={"type": "array", "items": value, "minItems": 1, "maxItems": 1000}),
             _object(["field", "op"], field=field, op={"const": "exists"}, value={"type": ["boolean", "null"]})]
    if text:
        parts.append(_object(["field", "op", "value"], field=field, op={"const": "contains"}, value=TEXT))
    if time:
        parts.append(_object(["field", "op", "value"], field=field, op={"enum": ["within_days", "before_days"]}, value=DAYS))
    return parts


def components() -> dict[str, Any]:
    """``{name: schema}`` to add to the document's components; refer to the rule as ``#/components/schemas/SegmentRule``."""
    rule = {"$ref": f"#/components/schemas/{NAME}"}
    scalar_text = {"type": "string", "maxLength": 1000}
    attribute = {"type": "string", "pattern": r"^attributes\." + KEY.pattern.removeprefix("^")}
    attribute_value = {"anyOf": [scalar_text, {"type": "number"}]}
    attribute_in = {"anyOf": [{"type": "array", "items": items, "minItems": 1, "maxItems": 1000}
                              for items in (scalar_text, {"type": "number"}, {"type": "boolean"})]}
    conditions = [
        *_conditions({"enum": list(PLAIN_FIELDS)}, scalar_text, text=True, time=False),
        *_conditions({"enum": list(TIME_FIELDS)}, {"type": "string", "format": "date-time"}, text=False, time=True),
        _object(["field", "op", "value"], field=attribute, op={"enum": COMPARE}, value=attribute_value),
        _object(["field", "op", "value"], field=attribute, op={"enum": ["eq", "ne"]}, value={"type": "boolean"}),
        _object(["field", "op", "value"], field=attribute, op={"const": "in"}, value=attribute_in),
        _object(["field", "op"], field=attribute, op={"const": "exists"}, value={"type": ["boolean", "null"]}),
        _object(["field", "op", "value"], field=attribute, op={"const": "contains"}, value=TEXT),
    ]
    return {NAME: {
        "description": f"A segment rule (crm_store.segments), nested at most {MAX_DEPTH} deep.",
        "anyOf": [
            _object(["all"], all={"type": "array", "items": rule, "minItems": 1}),
            _object(["any"], any={"type": "array", "items": rule, "minItems": 1}),
            _object(["not"], **{"not": rule}),
            _object(["tag"], tag=TEXT),
            _object(["channel"], channel=TEXT),
            _object(["event"], event=TEXT, min_count={"type": "integer", "minimum": 0, "maximum": MAX_COUNT}, within_days=DAYS,
                    min_total={"type": "number", "minimum": 0}),
            _object(["no_event"], no_event=TEXT, within_days=DAYS),
            *conditions,
        ],
    }}
