"""Argument validation (pure): bad input is refused with a sentence naming the fix."""

from __future__ import annotations

import pytest

from letta_conversations_mcp import validation as v

GOOD_CONV = "conv-4a4114b7-8387-4164-9ce1-f433b19e2f9d"
GOOD_AGENT = "agent-c5a90355-7e62-4651-b8f8-4ab17d9e7795"
GOOD_RUN = "run-598cf282-40aa-492c-a463-f7386b6d76e4"
GOOD_MESSAGE = "message-a50a9b0a-8372-4bfc-be3f-7fcad58ba3d8"
UUID = GOOD_CONV.removeprefix("conv-")


def test_examples_match_their_own_patterns() -> None:
    assert v.conversation_id(v.CONVERSATION_ID_EXAMPLE) == v.CONVERSATION_ID_EXAMPLE
    assert v.agent_id(v.AGENT_ID_EXAMPLE) == v.AGENT_ID_EXAMPLE
    assert v.run_id(v.RUN_ID_EXAMPLE) == v.RUN_ID_EXAMPLE
    assert v.message_id(v.MESSAGE_ID_EXAMPLE, argument="before") == v.MESSAGE_ID_EXAMPLE
    assert len(GOOD_CONV) == 41, "the server wants exactly 41 characters"


# -- conversation ids ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [GOOD_CONV, "default", f"  {GOOD_CONV} ", "conv-" + UUID.upper(), " default\n"])
def test_good_conversation_ids(value: str) -> None:
    assert v.conversation_id(value) == value.strip()


@pytest.mark.parametrize(
    "value",
    [
        "nope",
        "",
        "   ",
        "conv-123",
        GOOD_CONV + "0",
        GOOD_CONV[:-1],
        GOOD_AGENT,
        "agent-" + UUID,
        "conversation-" + UUID,
        "CONV-" + UUID,
        UUID,
        "DEFAULT",
        "default-conv",
        "conv-" + "x" * 36,
        "conv-" + UUID.replace("-", ""),
        GOOD_CONV + "\nconv-x",
        "x" * 5000,
    ],
)
def test_bad_conversation_ids(value: str) -> None:
    with pytest.raises(v.InvalidArgument) as info:
        v.conversation_id(value)
    message = str(info.value)
    assert message.startswith("conversation_id ")
    assert "pass 'default'" in message and v.CONVERSATION_ID_EXAMPLE in message
    assert "list_conversations" in message


def test_the_argument_name_is_in_the_message() -> None:
    with pytest.raises(v.InvalidArgument, match=r"^source_conversation_id 'nope' is not a conversation id"):
        v.conversation_id("nope", argument="source_conversation_id")


def test_long_values_are_shortened_in_messages() -> None:
    with pytest.raises(v.InvalidArgument) as info:
        v.conversation_id("x" * 500)
    message = str(info.value)
    assert len(message) < 300 and "x" * 57 + "..." in message and "x" * 58 not in message


def test_invalid_argument_is_a_value_error() -> None:
    assert issubclass(v.InvalidArgument, ValueError)


# -- agent, run and message ids -----------------------------------------------------------------------


@pytest.mark.parametrize("value", [GOOD_AGENT, f" {GOOD_AGENT} ", "agent-" + UUID.upper()])
def test_good_agent_ids(value: str) -> None:
    assert v.agent_id(value) == value.strip()


@pytest.mark.parametrize(
    "value", ["nope", "", "default", "agent-x", GOOD_CONV, "agent-" + UUID + "0", "Agent-" + UUID, "x" * 500]
)
def test_bad_agent_ids(value: str) -> None:
    with pytest.raises(v.InvalidArgument) as info:
        v.agent_id(value)
    assert "is not an agent id" in str(info.value) and "list_agents" in str(info.value)
    assert v.AGENT_ID_EXAMPLE in str(info.value)


@pytest.mark.parametrize("value", [GOOD_RUN, f"{GOOD_RUN}\n"])
def test_good_run_ids(value: str) -> None:
    assert v.run_id(value) == GOOD_RUN


@pytest.mark.parametrize("value", ["nope", "run-1", "default", "", GOOD_CONV, "run-" + UUID + "ab", "turn-" + UUID])
def test_bad_run_ids(value: str) -> None:
    with pytest.raises(v.InvalidArgument) as info:
        v.run_id(value)
    assert "is not a run id" in str(info.value) and "send_message" in str(info.value)


def test_message_ids() -> None:
    assert v.message_id(GOOD_MESSAGE, argument="after") == GOOD_MESSAGE
    for bad in ("nope", "m-1", "default", "message-1", GOOD_CONV, "msg-" + UUID, ""):
        with pytest.raises(v.InvalidArgument) as info:
            v.message_id(bad, argument="before")
        assert str(info.value).startswith("before ") and "list_messages" in str(info.value)


# -- message and summary text -------------------------------------------------------------------------


def test_message_text_is_kept_verbatim() -> None:
    assert v.message_text(" hi ") == " hi "
    assert v.message_text("x" * v.MAX_MESSAGE_CHARS) == "x" * v.MAX_MESSAGE_CHARS


@pytest.mark.parametrize("value", ["", " ", " \n\t "])
def test_empty_messages(value: str) -> None:
    with pytest.raises(v.InvalidArgument, match="message is empty"):
        v.message_text(value)


def test_huge_message() -> None:
    with pytest.raises(v.InvalidArgument) as info:
        v.message_text("x" * (v.MAX_MESSAGE_CHARS + 1))
    assert "100,001 characters" in str(info.value) and "100,000 allowed" in str(info.value)
    assert "split it" in str(info.value)
    with pytest.raises(v.InvalidArgument):
        v.message_text("x" * 10_000_000)


def test_summary_text() -> None:
    assert v.summary_text("  ok ") == "ok"
    assert v.summary_text("s" * 1000) == "s" * 1000
    with pytest.raises(v.InvalidArgument, match="summary is empty"):
        v.summary_text("   ")
    with pytest.raises(v.InvalidArgument, match="1001 characters; keep it under 1000"):
        v.summary_text("s" * 1001)


# -- resolve_agent --------------------------------------------------------------------------------------


def test_resolve_agent_prefers_the_explicit_agent() -> None:
    other = "agent-" + UUID
    assert v.resolve_agent(other, GOOD_AGENT, purpose="x") == other
    assert v.resolve_agent(f" {GOOD_AGENT} ", None, purpose="x") == GOOD_AGENT


@pytest.mark.parametrize("missing", [None, ""])
def test_resolve_agent_falls_back_to_the_default(missing: str | None) -> None:
    assert v.resolve_agent(missing, GOOD_AGENT, purpose="x") == GOOD_AGENT


def test_resolve_agent_validates_the_explicit_agent_even_with_a_default() -> None:
    with pytest.raises(v.InvalidArgument, match="is not an agent id"):
        v.resolve_agent("nope", GOOD_AGENT, purpose="x")


@pytest.mark.parametrize("missing", [None, ""])
def test_resolve_agent_without_any_agent(missing: str | None) -> None:
    with pytest.raises(v.InvalidArgument) as info:
        v.resolve_agent(missing, missing, purpose="to create a conversation")
    message = str(info.value)
    assert message.startswith("agent_id is required to create a conversation: pass agent_id")
    assert "list_agents" in message and "LETTA_AGENT_ID" in message and "--agent-id" in message


# -- model settings and block labels -----------------------------------------------------------------------


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
    assert v.model_settings({"provider_type": provider}) == {"provider_type": provider}


def test_model_settings_returns_a_copy_with_valid_fields() -> None:
    given = {"provider_type": "openai", "temperature": 0.2}
    result = v.model_settings(given)
    assert result == given and result is not given


def test_model_settings_rejects_bad_input_by_name() -> None:
    with pytest.raises(v.InvalidArgument, match=r"provider_type must be one of .*openai.*\(got None\)"):
        v.model_settings({"temperature": 0.1})
    with pytest.raises(v.InvalidArgument, match=r"got 'nonsense'"):
        v.model_settings({"provider_type": "nonsense"})
    with pytest.raises(v.InvalidArgument, match=r"unknown field\(s\) tempreature; allowed: .*temperature"):
        v.model_settings({"provider_type": "openai", "tempreature": 0.1})
    with pytest.raises(v.InvalidArgument, match=r"^model_settings\.temperature: "):
        v.model_settings({"provider_type": "anthropic", "temperature": "hot"})


def test_block_labels() -> None:
    assert v.block_labels(["human", " human ", "persona", "my-block_2"]) == ["human", "persona", "my-block_2"]
    for bad in (["bad label!"], [], [""], ["x" * 101], ["human", "ok/no"]):
        with pytest.raises(v.InvalidArgument, match="isolated_block_labels must be memory block labels"):
            v.block_labels(bad)
