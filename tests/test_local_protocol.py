"""The embedded model's prompt, tool protocol, threads and slots, without loading a model."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from typing import Any

import anyio
import jsonschema
import pytest

from tiered import Agent, Tool
from tiered._errors import BadModelResponse, UserError
from tiered._ledger import Ledger
from tiered._messages import (
    AssistantMessage,
    Message,
    ModelRequest,
    ModelResponse,
    OutputSchema,
    SystemMessage,
    ToolCall,
    ToolDefinition,
    ToolResultMessage,
    UserMessage,
)
from tiered._usage import Usage
from tiered.models import LocalModel
from tiered.models import _local as local_module
from tiered.models import _local_cores as cores_module
from tiered.models._local_cores import default_threads
from tiered.models._local_protocol import (
    AFTER_RESULTS,
    MAX_PARALLEL_CALLS,
    parse_reply,
    protocol_for,
    render_prompt,
)
from tiered.models._local_server import Server, ServerConfig
from tiered.models._weights import QWEN25_CODER_0_5B


def _tool(name: str) -> ToolDefinition:
    return ToolDefinition(
        name=name,
        description=f"The {name} tool.",
        parameters={
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    )


WEATHER, TIME = _tool("weather"), _tool("time")
REPORT = OutputSchema(
    name="report",
    schema={
        "type": "object",
        "properties": {"summary": {"type": "string"}},
        "required": ["summary"],
        "additionalProperties": False,
    },
)
SYSTEM = SystemMessage(content="You answer questions about cities.")
ASK = UserMessage(content="Weather and time in Paris and Rome?")


def _prompt(messages: tuple[Message, ...], **kw: Any) -> str:
    request = ModelRequest(messages=messages, tools=(WEATHER, TIME), output_schema=REPORT, **kw)
    protocol = protocol_for(request)
    return render_prompt(messages, protocol.instructions, protocol.directive)


def _system_turn(prompt: str) -> str:
    return prompt[: prompt.index("<|im_end|>")]


def test_turns_of_one_agent_share_everything_but_the_new_tail() -> None:
    first = _prompt((SYSTEM, ASK), tool_choice="required")
    call = ToolCall(id="c1", name="weather", arguments='{"city": "Paris"}')
    result = ToolResultMessage(tool_call_id="c1", name="weather", content="sunny")
    second = _prompt((SYSTEM, ASK, AssistantMessage(tool_calls=(call,)), result))
    shared = first[: next(i for i, (x, y) in enumerate(zip(first, second, strict=False)) if x != y)]
    # The turn-dependent line comes after the user's text, so only it differs.
    assert shared == first[: first.index("\nCall a tool now.")]
    assert "Tools:" in shared
    assert "Shape of final_answer" in shared
    assert first.endswith("Call a tool now.<|im_end|>\n<|im_start|>assistant\n")
    assert second.endswith(f"{AFTER_RESULTS}<|im_end|>\n<|im_start|>assistant\n")


@pytest.mark.parametrize("choice", ["none", "required", "time"])
def test_tool_choice_never_changes_the_system_turn(choice: str) -> None:
    auto = _prompt((SYSTEM, ASK))
    assert _system_turn(_prompt((SYSTEM, ASK), tool_choice=choice)) == _system_turn(auto)


def test_tool_choice_is_enforced_by_the_schema() -> None:
    def schema(choice: str) -> dict[str, Any]:
        request = ModelRequest(
            messages=(ASK,), tools=(WEATHER, TIME), output_schema=REPORT, tool_choice=choice
        )
        found = protocol_for(request).schema
        assert found is not None
        return found

    call = {"tool_calls": [{"name": "weather", "arguments": {"city": "Rome"}}]}
    final = {"final_answer": {"summary": "ok"}}
    jsonschema.validate(call, schema("auto"))
    jsonschema.validate(final, schema("auto"))
    jsonschema.validate(final, schema("none"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(call, schema("none"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(final, schema("required"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(call, schema("time"))  # only `time` may be called
    with pytest.raises(UserError, match="not among the request's tools"):
        protocol_for(ModelRequest(messages=(ASK,), tools=(WEATHER,), tool_choice="nope"))


def test_parallel_calls_come_back_as_several_tool_calls() -> None:
    request = ModelRequest(messages=(ASK,), tools=(WEATHER, TIME))
    protocol = protocol_for(request)
    text = json.dumps(
        {
            "tool_calls": [
                {"name": "weather", "arguments": {"city": "Paris"}},
                {"name": "time", "arguments": {"city": "Rome"}},
            ]
        }
    )
    assert protocol.schema is not None
    jsonschema.validate(json.loads(text), protocol.schema)
    message = parse_reply(text, protocol, "m")
    assert [(c.name, json.loads(c.arguments)) for c in message.tool_calls] == [
        ("weather", {"city": "Paris"}),
        ("time", {"city": "Rome"}),
    ]
    assert len({c.id for c in message.tool_calls}) == 2
    assert "list them all in this one reply" in protocol.instructions
    # Rendered back into history, the calls read exactly as the model wrote them.
    history = render_prompt((ASK, message), protocol.instructions)
    assert f"<|im_start|>assistant\n{text}<|im_end|>" in history


def test_a_model_that_lists_requests_first_writes_them_before_its_calls() -> None:
    request = ModelRequest(messages=(ASK,), tools=(WEATHER, TIME))
    protocol = protocol_for(request, list_requests=True)
    assert protocol.schema is not None
    assert protocol.requests_first
    assert "first list each separate thing the user asks for" in protocol.instructions
    calls = [
        {"name": "weather", "arguments": {"city": "Paris"}},
        {"name": "time", "arguments": {"city": "Rome"}},
    ]
    text = json.dumps({"requests": ["weather in Paris", "time in Rome"], "tool_calls": calls})
    jsonschema.validate(json.loads(text), protocol.schema)
    message = parse_reply(text, protocol, "m")
    assert [c.name for c in message.tool_calls] == ["weather", "time"]
    without = json.dumps({"tool_calls": calls})
    with pytest.raises(jsonschema.ValidationError):  # the list is not optional
        jsonschema.validate(json.loads(without), protocol.schema)
    with pytest.raises(BadModelResponse):
        parse_reply(without, protocol, "m")
    asked = {"requests": ["Paris"] * (MAX_PARALLEL_CALLS + 1), "tool_calls": calls}
    with pytest.raises(jsonschema.ValidationError):  # bounded, like the calls
        jsonschema.validate(asked, protocol.schema)
    # the transcript keeps the calls, not the list
    history = render_prompt((ASK, message), protocol.instructions)
    assert f"<|im_start|>assistant\n{without}<|im_end|>" in history
    # one call per reply: nothing to count, so no list
    single = protocol_for(replace(request, parallel_tool_calls=False), list_requests=True)
    assert not single.requests_first
    assert '"requests"' not in single.instructions
    # and the default protocol has no list
    assert not protocol_for(request).requests_first


def test_each_embedded_model_lists_requests_as_measured() -> None:
    from tiered.models import LocalModel

    assert LocalModel("qwen2.5-coder-1.5b").list_requests
    assert not LocalModel("qwen2.5-coder-0.5b").list_requests
    assert not LocalModel("qwen2.5-coder-1.5b", list_requests=False).list_requests


def test_parallel_calls_are_bounded_so_a_looping_model_cannot_lose_the_turn() -> None:
    protocol = protocol_for(ModelRequest(messages=(ASK,), tools=(WEATHER,)))
    assert protocol.schema is not None
    call_ = {"name": "weather", "arguments": {"city": "Paris"}}
    jsonschema.validate({"tool_calls": [call_] * MAX_PARALLEL_CALLS}, protocol.schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"tool_calls": [call_] * (MAX_PARALLEL_CALLS + 1)}, protocol.schema)


def test_one_call_per_turn_when_parallel_calls_are_off() -> None:
    request = ModelRequest(messages=(ASK,), tools=(WEATHER, TIME), parallel_tool_calls=False)
    protocol = protocol_for(request)
    two = {
        "tool_calls": [
            {"name": "weather", "arguments": {"city": "Paris"}},
            {"name": "time", "arguments": {"city": "Rome"}},
        ]
    }
    assert protocol.schema is not None
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(two, protocol.schema)
    assert "one call per reply" in protocol.instructions


@pytest.mark.parametrize(
    "text",
    [
        '{"tool_calls": []}',
        '{"tool_calls": [{"name": "nope", "arguments": {}}]}',
        '{"tool_calls": [{"name": "weather", "arguments": "Paris"}]}',
        '{"tool": "weather", "arguments": {"city": "Paris"}}',
        '{"final_answer": 3}',
        "not json",
    ],
)
def test_off_protocol_replies_are_bad_responses(text: str) -> None:
    protocol = protocol_for(ModelRequest(messages=(ASK,), tools=(WEATHER,)))
    with pytest.raises(BadModelResponse):
        parse_reply(text, protocol, "m")


def test_results_of_parallel_calls_share_one_user_turn_and_one_nudge() -> None:
    calls = (
        ToolCall(id="a", name="weather", arguments='{"city": "Paris"}'),
        ToolCall(id="b", name="time", arguments='{"city": "Rome"}'),
    )
    prompt = render_prompt(
        (
            ASK,
            AssistantMessage(tool_calls=calls),
            ToolResultMessage(tool_call_id="a", name="weather", content="sunny"),
            ToolResultMessage(tool_call_id="b", name="time", content="noon"),
        )
    )
    tail = prompt.split("<|im_start|>user\n")[-1]
    assert tail.count("<tool_response") == 2
    assert tail.count(AFTER_RESULTS) == 1


# --- threads, cores and slots ------------------------------------------------------------


def test_default_threads_use_every_allowed_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TIERED_THREADS", raising=False)
    assert default_threads() == cores_module.cpu_count() >= 1
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(cores_module, "_core_of", lambda cpu: ("0", str(cpu // 2)))
    assert default_threads() == 2  # two hyperthreads of one core count once
    monkeypatch.setattr(cores_module, "_core_of", lambda cpu: None)
    assert default_threads() == 4  # no topology: every allowed CPU
    monkeypatch.setenv("TIERED_THREADS", "3")
    assert default_threads() == 3
    monkeypatch.setenv("TIERED_THREADS", "zero")
    with pytest.raises(UserError, match="TIERED_THREADS"):
        default_threads()


def _overlap(monkeypatch: pytest.MonkeyPatch, cores: int, threads: int) -> bool:
    """Whether two servers' requests ran at the same time on a machine of `cores`."""
    monkeypatch.setattr(cores_module, "cpu_count", lambda: cores)
    gate = cores_module.Cores()
    inside: list[int] = []
    seen: list[int] = []

    def work(owner: int) -> None:
        with gate.use(owner, threads):
            inside.append(owner)
            seen.append(len(inside))
            time.sleep(0.05)
            inside.remove(owner)

    workers = [threading.Thread(target=work, args=(o,)) for o in (1, 2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return max(seen) == 2


def test_servers_take_turns_rather_than_oversubscribe(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not _overlap(monkeypatch, cores=2, threads=2)
    assert _overlap(monkeypatch, cores=2, threads=1)


def test_a_request_goes_to_the_idle_slot_that_holds_most_of_its_prompt() -> None:
    server = Server(
        QWEN25_CODER_0_5B, ServerConfig(n_ctx=512, threads=1, parallel=3, verbose=False)
    )
    planner, file_p, restore_p = server._take_slot("SYS-P|goal", "SYS-P")
    agent, file_a, restore_a = server._take_slot("SYS-A|ticket 1", "SYS-A")
    assert (planner, agent) == (0, 1)  # the planner's slot is busy: a free one
    assert (restore_p, restore_a) == (True, True)  # neither held its system turn yet
    assert file_p != file_a
    assert file_p.startswith(QWEN25_CODER_0_5B.sha256[:12])
    assert file_p.endswith(".bin")
    # A second conversation on the same agent takes the last free slot, not the busy one.
    other, file_o, restore_o = server._take_slot("SYS-A|ticket 2", "SYS-A")
    assert (other, file_o, restore_o) == (2, file_a, True)
    server._release(agent)
    server._release(planner)
    # The first conversation's next turn goes back to its own slot, nothing to restore.
    assert server._take_slot("SYS-A|ticket 1|result", "SYS-A") == (agent, file_a, False)
    server._release(agent)
    server._release(other)
    # A new prefix evicts the slot used longest ago (the planner's), however much text
    # the other slots share with it short of its system turn.
    assert server._take_slot("SYS-Ax|x", "SYS-Ax")[0] == planner


def test_seed_and_temperature_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIERED_LOCAL_SEED", "7")
    monkeypatch.setenv("TIERED_LOCAL_TEMPERATURE", "0.5")
    model = LocalModel()
    assert (model.seed, model.temperature) == (7, 0.5)
    assert LocalModel(seed=3, temperature=0.0).seed == 3
    monkeypatch.delenv("TIERED_LOCAL_SEED")
    monkeypatch.delenv("TIERED_LOCAL_TEMPERATURE")
    assert (LocalModel().seed, LocalModel().temperature) == (None, 0.0)
    monkeypatch.setenv("TIERED_LOCAL_SEED", "x")
    with pytest.raises(UserError, match="TIERED_LOCAL_SEED"):
        LocalModel()


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_reply_that_only_repeats_answered_calls_is_asked_for_its_answer(
    anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    call = ToolCall(id="c1", name="weather", arguments='{"city": "Paris"}')
    history: tuple[Message, ...] = (
        ASK,
        AssistantMessage(tool_calls=(call,)),
        ToolResultMessage(tool_call_id="c1", name="weather", content="sunny"),
    )
    seen: list[str] = []

    async def fake(self: LocalModel, request: ModelRequest) -> ModelResponse:
        seen.append(str(request.tool_choice))
        if request.tool_choice == "none":
            return ModelResponse(
                message=AssistantMessage(content="Sunny."),
                usage=Usage(output_tokens=2),
                model_name="m",
            )
        again = ToolCall(id="c2", name="weather", arguments='{ "city":"Paris" }')
        return ModelResponse(
            message=AssistantMessage(tool_calls=(again,)),
            usage=Usage(output_tokens=9),
            model_name="m",
        )

    monkeypatch.setattr(LocalModel, "_request", fake)
    response = await LocalModel().request(ModelRequest(messages=history, tools=(WEATHER,)))
    assert seen == ["auto", "none"]
    assert response.message.content == "Sunny."
    assert response.usage.output_tokens == 11
    # A new call (another city) is not a repeat, and a forced turn is never second-guessed.
    seen.clear()
    fresh = (ASK,)
    response = await LocalModel().request(ModelRequest(messages=fresh, tools=(WEATHER,)))
    assert seen == ["auto"]
    assert response.message.tool_calls


class _CutOffServer:
    """A llama.cpp server stand-in whose every answer stops at the output cap mid-JSON."""

    started = True

    def limiter(self) -> anyio.CapacityLimiter:
        return anyio.CapacityLimiter(1)

    def complete(self, body: dict[str, Any], *args: Any) -> dict[str, Any]:
        usage = {"prompt_tokens": 600, "completion_tokens": body["max_tokens"]}
        return {"text": '{"tool_calls": [{"name": "weather", "argu', "finish_reason": "length",
                "usage": usage}  # fmt: skip


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_an_answer_cut_off_mid_json_fails_with_its_tokens_booked(
    anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local_module, "server_for", lambda weights, config: _CutOffServer())
    weather = Tool.from_schema("weather", "The weather.", dict(WEATHER.parameters), str)
    agent: Agent[str] = Agent(name="w", instructions="Look up the weather.", max_output_tokens=64)
    ledger = Ledger()
    with pytest.raises(BadModelResponse, match="max_output_tokens") as raised:
        await agent.run("Paris?", model=LocalModel(), ledger=ledger, extra_tools=[weather])
    # the failed call generated its tokens: they are on the error and in the ledger
    assert raised.value.usage is not None
    assert (raised.value.usage.input_tokens, raised.value.usage.output_tokens) == (600, 64)
    assert (ledger.usage.input_tokens, ledger.usage.output_tokens) == (600, 64)


# --- runaway repetition -------------------------------------------------------------------


def test_looping_flags_short_pieces_repeated_not_prose_or_separator_lines() -> None:
    from tiered.models._local_replies import LOOP_CHARS, looping

    assert looping("The total for July is 15" + "0" * LOOP_CHARS)
    assert looping('{"final_answer": "' + "\n" * LOOP_CHARS)
    assert looping("ab" + "123 " * 60)
    # the 1.5B on BFCL simple_python_375: one list item, repeated to the output cap
    assert looping('{"items": [' + '"pumpkin", ' * 20)
    assert not looping("0" * (LOOP_CHARS - 1))  # too short to tell
    assert not looping("# " + "-" * 98 + "\n" + "Refund $42.00 for order A17. " * 4)
    prose = "Order A17 is 5 days late, so it gets a refund of $42.00 under the policy. " * 4
    assert not looping(prose)


class _Native:
    """llama.cpp's native server stand-in: streams `pieces`, stopping when told to."""

    def __init__(self, pieces: list[str]) -> None:
        self.pieces = pieces
        self.sent = 0

    def handle_completions(self, body: dict[str, Any], on_chunk: Any) -> None:
        for piece in self.pieces:
            self.sent += 1
            if on_chunk({"choices": [{"text": piece}]}):
                return
        on_chunk({"choices": [{"text": "", "finish_reason": "length"}]})


def test_a_runaway_stream_stops_at_the_loop_not_at_the_output_cap() -> None:
    from tiered.models._local_server import Server

    server = Server.__new__(Server)
    native = _Native(['{"final_answer": "The total is 15', *["0"] * 1000])
    server._native = native
    result = server._stream({"prompt": "p"}, threading.Event(), None)
    assert result["runaway"] is True
    assert native.sent < 250  # stopped about 200 characters in, not after 1,000 tokens
    # the stopped stream reported no usage: its output is counted as streamed
    assert result["usage"] == {"completion_tokens": native.sent}
    calm = _Native(['{"final_answer": "ok"}'])
    server._native = calm
    assert "runaway" not in server._stream({"prompt": "p"}, threading.Event(), None)


class _LoopingServer:
    """A server stand-in that loops once (or always), then answers on the DRY retry."""

    started = True

    def __init__(self, *, loops_every_time: bool) -> None:
        self.loops_every_time = loops_every_time
        self.bodies: list[dict[str, Any]] = []

    def limiter(self) -> anyio.CapacityLimiter:
        return anyio.CapacityLimiter(1)

    def complete(self, body: dict[str, Any], *args: Any) -> dict[str, Any]:
        self.bodies.append(body)
        usage = {"prompt_tokens": 500, "completion_tokens": 70 + 10 * len(self.bodies)}
        if self.loops_every_time or len(self.bodies) == 1:
            return {"text": '{"final_answer": "15' + "0" * 200, "runaway": True, "usage": usage}
        return {"text": '{"final_answer": "The total is 1500."}', "finish_reason": "stop",
                "usage": usage}  # fmt: skip


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("loops_twice", [False, True])
async def test_a_runaway_is_generated_again_with_dry_and_both_calls_are_booked(
    anyio_backend: str, loops_twice: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once: the DRY retry's answer is the reply. Twice: `BadModelResponse`, tokens on it."""
    server = _LoopingServer(loops_every_time=loops_twice)
    monkeypatch.setattr(local_module, "server_for", lambda weights, config: server)
    weather = Tool.from_schema("weather", "The weather.", dict(WEATHER.parameters), str)
    agent: Agent[str] = Agent(name="w", instructions="Sum it.")
    ledger = Ledger()
    run = agent.run("Total?", model=LocalModel(), ledger=ledger, extra_tools=[weather])
    if loops_twice:
        with pytest.raises(BadModelResponse, match="repeating loop") as raised:
            await run
        assert raised.value.usage is not None
        assert raised.value.usage.output_tokens == 80 + 90
    else:
        assert (await run).output == "The total is 1500."
    assert len(server.bodies) == 2
    assert "dry_multiplier" not in server.bodies[0]
    assert server.bodies[1]["dry_multiplier"] > 0
    assert (ledger.usage.input_tokens, ledger.usage.output_tokens) == (1000, 80 + 90)


def test_a_stopped_stream_is_booked_with_the_prompt_read_again() -> None:
    from tiered.models._local_replies import add_usage

    stopped = {"completion_tokens": 201}
    again = {
        "prompt_tokens": 900,
        "completion_tokens": 30,
        "prompt_tokens_details": {"cached_tokens": 890},
    }
    assert add_usage(stopped, again) == {
        "prompt_tokens": 1800,
        "completion_tokens": 231,
        "prompt_tokens_details": {"cached_tokens": 890},
    }
    assert add_usage(None, again)["prompt_tokens"] == 1800
