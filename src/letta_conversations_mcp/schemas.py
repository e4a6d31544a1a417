"""Flat JSON schemas for the tool results: ``FlatSchema`` and the pure functions behind it.

Hosts check every structuredContent against the outputSchema (the python MCP client does, with
jsonschema, on each call), so the published schemas are flat: nested models are inlined instead
of ``$ref``-erenced, and a nullable field is one type list (``{"type": ["string", "null"]}``) instead
of an ``anyOf`` with null; property titles pydantic derives from field names are left out. They say
what pydantic's default schemas say at about half the checking cost per list item
(benchmarks/bench_real_letta.py). A long list's items can go further (``summarized_items``): each is
checked only as an object with its required fields, its other fields described in words.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

Resolve = Callable[[JsonSchemaValue], JsonSchemaValue]
NULL: JsonSchemaValue = {"type": "null"}


def flat_schema(node: Any, resolve: Resolve, refs: tuple[str, ...] = ()) -> Any:
    """A JSON schema with its ``$ref``s inlined (through ``resolve``) and nullable ``anyOf``s merged."""
    if isinstance(node, list):
        return [flat_schema(item, resolve, refs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        ref = str(node["$ref"])
        if ref in refs:
            raise ValueError(f"recursive schema {ref} cannot be flattened")
        target = flat_schema(resolve({"$ref": ref}), resolve, (*refs, ref))
        return {**target, **{k: flat_schema(v, resolve, refs) for k, v in node.items() if k != "$ref"}}
    flat = {k: flat_schema(v, resolve, refs) for k, v in node.items() if k != "properties"}
    if isinstance(node.get("properties"), dict):
        flat["properties"] = {
            name: untitled(name, flat_schema(sub, resolve, refs)) for name, sub in node["properties"].items()
        }
    return merge_nullable(flat)


def untitled(name: str, schema: Any) -> Any:
    """A property's schema without the title pydantic derives from its name ('tool_name' → 'Tool Name')."""
    if isinstance(schema, dict) and schema.get("title") == name.replace("_", " ").title():
        return {k: v for k, v in schema.items() if k != "title"}
    return schema


def merge_nullable(schema: JsonSchemaValue) -> JsonSchemaValue:
    """``{"anyOf": [S, {"type": "null"}], …}`` → S with ``"null"`` added to its type (and enum)."""
    options = schema.get("anyOf")
    if not isinstance(options, list) or len(options) != 2 or NULL not in options:
        return schema
    other: JsonSchemaValue = options[0] if options[1] == NULL else options[1]
    kind = other.get("type")
    if not isinstance(kind, str) or "const" in other:
        return schema
    merged = {**other, **{k: v for k, v in schema.items() if k != "anyOf"}, "type": [kind, "null"]}
    if "enum" in other:
        merged["enum"] = [*other["enum"], None]
    return merged


def summarized_items(items: JsonSchemaValue) -> JsonSchemaValue:
    """A list item's schema that checks only that an item is an object with its required fields, its
    other fields described in words.

    jsonschema descends into every property of every item, and that is nearly all of the time a host
    spends checking a long page (30x a check without them, benchmarks/bench_overhead.py); our own
    pydantic model guarantees the field types before anything is sent.
    """
    fields = []
    for name, prop in (items.get("properties") or {}).items():
        kind = prop.get("type")
        kind = kind[0] if isinstance(kind, list) else kind
        about = f": {prop['description']}" if prop.get("description") else ""
        fields.append(f"{name} ({kind}){about}")
    description = " ".join(filter(None, [items.get("description"), "Fields: " + "; ".join(fields) + "."]))
    return {"type": "object", "required": items.get("required", []), "description": description}


class FlatSchema(BaseModel):
    """A result model whose JSON schema is published flat (see the module docstring)."""

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler, /) -> JsonSchemaValue:
        schema = handler(core_schema)
        definition = handler.resolve_ref_schema(schema)
        flat = flat_schema(definition, handler.resolve_ref_schema)
        definition.clear()
        definition.update(flat)
        return schema
