"""Argument validation (pure): bad input is refused with a sentence naming the fix."""

from __future__ import annotations

import pytest

from letta_conversations_mcp import validation as v

GOOD_CONV = "conv-4a4114b7-8387-4164-9ce1-f433b19e2f9d"
GOOD_AGENT = "agent-c5a90355-7e62-4651-b8f8-4ab17d9e7795"


@pytest.mark.parametrize("value", [GOOD_CONV, "default", f"  {GOOD_CONV} "])
def test_good_conversation_ids(value: str) -> None:
    assert v.conversation_id(value) == value.strip()


@pytest.mark.parametrize("value", ["nope", "conv-123", GOOD_CONV + "0", GOOD_AGENT, "", "DEFAULT", "conv-" + "x" * 36])
def test_bad_conversation_ids(value: str) -> None:
    with pytest.raises(v.InvalidArgument) as info:
        v.conversation_id(value)
    assert "pass 'default'" in str(info.value) and "list_conversations" in str(info.value)


def test_long_values_are_shortened_in_messages() -> None:
    with pytest.raises(v.InvalidArgument) as info:
        v.conversation_id("x" * 500)
    assert len(str(info.value)) < 300


def test_agent_run_and_message_ids() -> None:
    assert v.agent_id(GOOD_AGENT) == GOOD_AGENT
    with pytest.raises(v.InvalidArgument, match="list_agents"):
        v.agent_id("agent-x")
    assert v.run_id("run-598cf282-40aa-492c-a463-f7386b6d76e4")
    with pytest.raises(v.InvalidArgument, match="send_message"):
        v.run_id("run-1")
    with pytest.raises(v.InvalidArgument, match="before"):
        v.message_id("m-1", argument="before")


def test_message_text() -> None:
    assert v.message_text(" hi ") == " hi "
    with pytest.raises(v.InvalidArgument, match="empty"):
        v.message_text(" \n ")
    with pytest.raises(v.InvalidArgument, match="split it"):
        v.message_text("x" * (v.MAX_MESSAGE_CHARS + 1))


def test_summary_text() -> None:
    assert v.summary_text("  ok ") == "ok"
    with pytest.raises(v.InvalidArgument):
        v.summary_text("   ")
    with pytest.raises(v.InvalidArgument, match="under 1000"):
        v.summary_text("s" * 1001)


def test_resolve_agent() -> None:
    assert v.resolve_agent(GOOD_AGENT, None, purpose="x") == GOOD_AGENT
    assert v.resolve_agent(None, GOOD_AGENT, purpose="x") == GOOD_AGENT
    with pytest.raises(v.InvalidArgument) as info:
        v.resolve_agent(None, None, purpose="to create a conversation")
    assert "agent_id is required to create a conversation" in str(info.value)
    assert "LETTA_AGENT_ID" in str(info.value)


@pytest.mark.parametrize(
    "provider",
    [
        "openai",
        "anthropic",
        "google_ai",
        "google_vertex",
        "azure",
        "xai",
        "zai",
        "groq",
        "deepseek",
        "together",
        "bedrock",
        "baseten",
        "openrouter",
        "sglang",
        "chatgpt_oauth",
    ],
)
def test_model_settings_accepts_every_provider(provider: str) -> None:
    assert v.model_settings({"provider_type": provider})["provider_type"] == provider


def test_model_settings_rejects_bad_input_by_name() -> None:
    with pytest.raises(v.InvalidArgument, match="provider_type must be one of"):
        v.model_settings({"temperature": 0.1})
    with pytest.raises(v.InvalidArgument, match=r"unknown field.*tempreature"):
        v.model_settings({"provider_type": "openai", "tempreature": 0.1})
    with pytest.raises(v.InvalidArgument, match=r"model_settings\.temperature"):
        v.model_settings({"provider_type": "anthropic", "temperature": "hot"})


def test_block_labels() -> None:
    assert v.block_labels(["human", " human ", "persona"]) == ["human", "persona"]
    with pytest.raises(v.InvalidArgument):
        v.block_labels(["bad label!"])
    with pytest.raises(v.InvalidArgument):
        v.block_labels([])
