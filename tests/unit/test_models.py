"""Result models → the outputSchema a host checks every structuredContent against: flat (no $ref,
no anyOf), as cheap to check as the data allows, and saying what pydantic's default schema says."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Annotated, Any

import pytest
from jsonschema.validators import extend, validator_for
from mcp.server.mcpserver.utilities.func_metadata import func_metadata
from mcp_types import CallToolResult
from pydantic import BaseModel, create_model
from referencing import Registry

from letta_conversations_mcp import models, search_results
from letta_conversations_mcp.models import MessagePage, PageMessage, SendResult, TurnStep
from letta_conversations_mcp.schemas import FlatSchema, flat_schema, merge_nullable

RESULT_MODELS = sorted(
    {
        m
        for module in (models, search_results)
        for m in vars(module).values()
        if isinstance(m, type) and issubclass(m, FlatSchema) and m is not FlatSchema
    },
    key=lambda m: m.__name__,
)
COMPOSITION = {"$ref", "$defs", "anyOf", "oneOf", "allOf"}


def output_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The outputSchema the MCP SDK publishes for a tool returning ``Annotated[CallToolResult, model]``."""

    def tool() -> CallToolResult:
        raise NotImplementedError

    tool.__annotations__["return"] = Annotated[CallToolResult, model]  # as the server's tools declare it
    schema = func_metadata(tool).output_schema
    assert schema is not None
    return schema


def pydantic_default(model: type[BaseModel]) -> dict[str, Any]:
    fields: dict[str, Any] = {name: (f.annotation, f) for name, f in model.model_fields.items()}
    return create_model(model.__name__, **fields).model_json_schema()


def keys(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from keys(value)
    elif isinstance(node, list):
        for item in node:
            yield from keys(item)


def test_every_result_model_is_flat() -> None:
    assert len(RESULT_MODELS) >= 9, [m.__name__ for m in RESULT_MODELS]
    for model in RESULT_MODELS:
        schema = output_schema(model)
        assert schema["type"] == "object", model.__name__
        assert not COMPOSITION & set(keys(schema)), model.__name__


def shown(model: type[BaseModel]) -> set[str]:
    """The fields a result shows (those excluded from its dump are not in its schema either)."""
    return {name for name, field in model.model_fields.items() if not field.exclude}


def test_list_items_are_one_flat_object_of_plain_typed_fields() -> None:
    for model, field, item_model in ((SendResult, "steps", TurnStep),):
        item = output_schema(model)["properties"][field]["items"]
        assert item["type"] == "object" and set(item["properties"]) == shown(item_model)
        for name, prop in item["properties"].items():
            assert set(prop) <= {"type", "default", "description", "enum"}, (model.__name__, name, prop)
            assert prop["type"] in ("string", "integer", "boolean", ["string", "null"]), (name, prop)


def sample_page(count: int = 50) -> dict[str, Any]:
    views = [PageMessage(id=f"message-{i}", type="assistant", text="hello " * 20) for i in range(count)]
    page = MessagePage(conversation_id="conv-1", order="desc", messages=views, next_before="message-49")
    return page.model_dump(mode="json", exclude_defaults=True)  # as results are sent


def validation_steps(schema: dict[str, Any], instance: Any) -> int:
    """How many keyword checks jsonschema makes to validate ``instance`` (the work per host-side check)."""
    count = 0

    def counted(check: Any) -> Any:
        def run(*args: Any) -> Any:
            nonlocal count
            count += 1
            return check(*args)

        return run

    base = validator_for(schema)
    counting = extend(base, {k: counted(v) for k, v in base.VALIDATORS.items()})
    assert list(counting(schema, registry=Registry()).iter_errors(instance)) == []
    return count


def test_page_messages_are_checked_as_objects_with_their_required_fields_only() -> None:
    """A host descending into every field of every message spends nearly all its check there."""
    item = output_schema(MessagePage)["properties"]["messages"]["items"]
    assert set(item) == {"type", "required", "description"} and set(item["required"]) == {"id", "type", "text"}
    for name in shown(PageMessage):  # every field is still described, in words
        assert f"{name} (" in item["description"], name
    assert "user, assistant" in item["description"]


def test_a_fifty_message_page_costs_two_steps_per_message() -> None:
    page = sample_page()
    steps = validation_steps(output_schema(MessagePage), page)
    # per message: the item's type and required (and the page's own type, properties and required once)
    assert steps <= 50 * 2 + 2 * len(page) + 3, steps
    # pydantic's default schema on the full dump (nulls and defaults included) costs more than 5 times as much
    full = MessagePage.model_validate(page).model_dump(mode="json")
    assert steps < 0.2 * validation_steps(pydantic_default(MessagePage), full)


VALID_SEND: dict[str, Any] = {
    "reply": "noted: tea",
    "steps": [{"tool": "memory_insert", "arguments": "{}", "result": "ok", "status": "success", "text": None}],
    "tokens": 3,
    "status": "completed",
    "conversation_id": "conv-1",
    "run_id": "run-1",
}
INVALID_SENDS: list[dict[str, Any]] = [
    {**VALID_SEND, "tokens": "lots"},
    {**VALID_SEND, "tokens": 2.5},
    {**VALID_SEND, "steps": [{"kind": "daydream"}]},
    {**VALID_SEND, "steps": [{"kind": None}]},
    {**VALID_SEND, "steps": [{"tool": 7}]},
    {**VALID_SEND, "status": None},
    {**VALID_SEND, "run_id": 7},
    {k: v for k, v in VALID_SEND.items() if k != "conversation_id"},
]


def test_flat_schema_accepts_and_rejects_what_the_default_schema_does() -> None:
    flat, default = output_schema(SendResult), pydantic_default(SendResult)
    page_flat, page_default = output_schema(MessagePage), pydantic_default(MessagePage)
    cases = [(flat, default, s) for s in [VALID_SEND, {**VALID_SEND, "tokens": None}, *INVALID_SENDS]]
    bad_page = {**sample_page(2), "order": "sideways"}
    cases += [(page_flat, page_default, p) for p in (sample_page(2), bad_page)]
    cases += [(page_flat, page_default, {**sample_page(1), "messages": [{"id": "m", "text": None}]})]
    for one, other, instance in cases:
        verdicts = [validator_for(s)(s).is_valid(instance) for s in (one, other)]
        assert verdicts[0] == verdicts[1], instance
    assert validator_for(flat)(flat).is_valid(VALID_SEND)
    assert not any(validator_for(flat)(flat).is_valid(s) for s in INVALID_SENDS)


def test_descriptions_defaults_and_required_fields_are_kept() -> None:
    schema = output_schema(SendResult)
    assert set(schema["required"]) == {"reply", "status", "conversation_id"}
    assert schema["properties"]["truncated"]["default"] is False
    assert "size cap" in schema["properties"]["truncated"]["description"]
    assert schema["properties"]["tokens"]["type"] == ["integer", "null"]
    hidden = {"message_ids", "usage"}  # the ids are list_messages' business; tokens say what usage said
    assert not hidden & set(schema["properties"]) and "message_id" not in schema["properties"]["steps"]["items"]
    assert schema["properties"]["steps"]["items"]["properties"]["kind"]["default"] == "tool_call"
    assert schema["description"] == inspect.cleandoc(SendResult.__doc__ or "")


def test_merge_nullable_keeps_enums_and_leaves_other_unions() -> None:
    nullable_enum = {"anyOf": [{"enum": ["a", "b"], "type": "string"}, {"type": "null"}], "default": None}
    assert merge_nullable(nullable_enum) == {"enum": ["a", "b", None], "type": ["string", "null"], "default": None}
    for union in (
        {"anyOf": [{"type": "string"}, {"type": "integer"}]},
        {"anyOf": [{"const": "x", "type": "string"}, {"type": "null"}]},
        {"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]},
    ):
        assert merge_nullable(union) == union


def test_recursive_schemas_are_refused_rather_than_looping() -> None:
    defs = {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}}
    with pytest.raises(ValueError, match="recursive"):
        flat_schema({"$ref": "#/$defs/Node"}, lambda ref: defs[ref["$ref"].rsplit("/", 1)[1]])
