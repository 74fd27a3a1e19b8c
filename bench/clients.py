"""The contenders: one single-turn call and one tool-calling run, the same work for each.

Every contender talks to the same simulator, asks the same model for the same thing
(instructions + one user message, answer "ok"; or: call `lookup_order` once, then answer)
and is safe to call concurrently. Floors (bare HTTP + JSON parse) bound what any client on
that transport can do; `sdk-post` is the SDK path `OpenAIModel` takes on httpx2 and for
streamed calls (on aiohttp its non-streamed calls skip the SDK: `models/_direct.py`).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Callable
from typing import Any, cast

__all__ = (
    "CONTENDERS",
    "Contender",
    "TieredModelHandle",
    "import_openai_agents",
    "make",
)

MODEL = "gpt-5.4-nano"
INSTRUCTIONS = "You are a concise assistant. Answer in one word."
PROMPT = "Say ok."
TOOL_PROMPT = "Look up order A17 and say whether it is late. #sim:call=lookup_order"
ORDER = {"order_id": "A17", "total_cents": 4200, "days_late": 5}
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def import_openai_agents() -> Any:
    """Import the `openai-agents` package (`agents`), not this repository's `agents/` folder.

    Running from the repository root puts it on `sys.path`, where its `agents/` (shipped as
    `tiered.agents`) would shadow the installed package.
    """
    loaded = sys.modules.get("agents")
    if loaded is not None and os.path.dirname(os.path.dirname(loaded.__file__ or "")) != _REPO:
        return loaded
    sys.modules.pop("agents", None)
    saved = list(sys.path)
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _REPO]
    try:
        return importlib.import_module("agents")
    finally:
        sys.path[:] = saved


def _messages(prompt: str) -> list[dict[str, Any]]:
    return [{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": prompt}]


_TOOL_SCHEMA = {
    "type": "function",
    "function": {
        "name": "lookup_order",
        "description": "Look an order up by its id.",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string"}},
            "required": ["order_id"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}


async def lookup_order(order_id: str) -> dict[str, Any]:
    """Look an order up by its id.

    Args:
        order_id: The order's id.
    """
    return {**ORDER, "order_id": order_id}


class Contender:
    """One way of making the call. Subclasses set `name`, `layer` and the methods."""

    name = ""
    layer = ""
    """`floor` (bare HTTP), `sdk`, `tiered` or `peer`."""
    transport = "httpx2"
    tool_loop = True

    async def setup(self, base_url: str) -> None:
        raise NotImplementedError

    async def single(self) -> str:
        raise NotImplementedError

    async def tool_run(self) -> str:
        raise NotImplementedError

    async def close(self) -> None:
        pass


def _openai_client(base_url: str, transport: str) -> Any:
    import openai

    http_client = openai.DefaultAioHttpClient() if transport == "aiohttp" else None
    return openai.AsyncOpenAI(
        base_url=base_url, api_key="sk-bench", max_retries=0, http_client=http_client
    )


# --- floors ------------------------------------------------------------------------------


class AiohttpFloor(Contender):
    name = "floor/aiohttp"
    layer = "floor"
    transport = "aiohttp"
    tool_loop = False

    async def setup(self, base_url: str) -> None:
        import aiohttp

        self._url = base_url + "/chat/completions"
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        self._body = json.dumps({"model": MODEL, "messages": _messages(PROMPT)}).encode()
        self._headers = {"content-type": "application/json", "authorization": "Bearer sk-bench"}

    async def single(self) -> str:
        async with self._session.post(self._url, data=self._body, headers=self._headers) as r:
            data = json.loads(await r.read())
        return str(data["choices"][0]["message"]["content"])

    async def close(self) -> None:
        await self._session.close()


class Httpx2Floor(Contender):
    name = "floor/httpx2"
    layer = "floor"
    tool_loop = False

    async def setup(self, base_url: str) -> None:
        import httpx2

        self._url = base_url + "/chat/completions"
        self._client = httpx2.AsyncClient(
            limits=httpx2.Limits(max_connections=1000, max_keepalive_connections=1000)
        )
        self._body = json.dumps({"model": MODEL, "messages": _messages(PROMPT)}).encode()
        self._headers = {"content-type": "application/json", "authorization": "Bearer sk-bench"}

    async def single(self) -> str:
        r = await self._client.post(self._url, content=self._body, headers=self._headers)
        data = json.loads(r.content)
        return str(data["choices"][0]["message"]["content"])

    async def close(self) -> None:
        await self._client.aclose()


# --- the raw SDK -------------------------------------------------------------------------


class SdkPost(Contender):
    """`client.post(cast_to=Response)` + `json.loads`: the SDK path `OpenAIModel` takes on
    httpx2, for streamed calls, and with a client given (`tiered-split`)."""

    name = "sdk-post/httpx2"
    layer = "sdk"
    tool_loop = False

    def __init__(self, transport: str = "httpx2") -> None:
        self.transport = transport
        self.name = f"sdk-post/{transport}"

    async def setup(self, base_url: str) -> None:
        import httpx2

        self._client = _openai_client(base_url, self.transport)
        self._cast = httpx2.Response
        self._body = {"model": MODEL, "messages": _messages(PROMPT)}

    async def single(self) -> str:
        r = await self._client.post("/chat/completions", cast_to=self._cast, body=self._body)
        return str(json.loads(r.content)["choices"][0]["message"]["content"])

    async def close(self) -> None:
        await self._client.close()


class RawSdk(Contender):
    """`client.chat.completions.create(...)`: what most code writes; the reference."""

    layer = "sdk"

    def __init__(self, transport: str = "httpx2") -> None:
        self.transport = transport
        self.name = f"raw-sdk/{transport}"

    async def setup(self, base_url: str) -> None:
        self._client = _openai_client(base_url, self.transport)

    async def single(self) -> str:
        r = await self._client.chat.completions.create(model=MODEL, messages=_messages(PROMPT))
        return str(r.choices[0].message.content)

    async def tool_run(self) -> str:
        create = self._client.chat.completions.create
        messages: list[Any] = _messages(TOOL_PROMPT)
        while True:
            r = await create(model=MODEL, messages=messages, tools=[_TOOL_SCHEMA])
            msg = r.choices[0].message
            if not msg.tool_calls:
                return str(msg.content)
            messages.append(msg.model_dump(exclude_none=True))
            for tc in msg.tool_calls:
                args = json.loads(tc.function.arguments)
                result = await lookup_order(**args)
                messages.append(
                    {"role": "tool", "tool_call_id": tc.id, "content": json.dumps(result)}
                )

    async def close(self) -> None:
        await self._client.close()


# --- tiered ------------------------------------------------------------------------------


class TieredModel(Contender):
    """`OpenAIModel.request`: tiered's model seam alone (no agent loop, no ledger)."""

    layer = "tiered"
    tool_loop = False

    def __init__(self, transport: str = "httpx2") -> None:
        self.transport = transport
        self.name = f"tiered-model/{transport}"

    async def setup(self, base_url: str) -> None:
        from tiered import ModelRequest, SystemMessage, UserMessage
        from tiered.models import OpenAIModel

        self._handle = TieredModelHandle(base_url, self.transport)
        self._model = self._handle.model
        self._request = ModelRequest(
            messages=(SystemMessage(content=INSTRUCTIONS), UserMessage(content=PROMPT))
        )
        assert isinstance(self._model, OpenAIModel)

    async def single(self) -> str:
        r = await self._model.request(self._request)
        return str(r.message.content)

    async def close(self) -> None:
        await self._handle.aclose()


class TieredModelHandle:
    """An `OpenAIModel` on one transport (`OpenAIModel(transport=...)`: aiohttp is tiered's
    default under asyncio, httpx2 the SDK's), and what must be closed after it."""

    def __init__(self, base_url: str, transport: str, name: str = MODEL) -> None:
        from tiered.models import OpenAIModel

        self.model = OpenAIModel(
            name, base_url=base_url, api_key="sk-bench", transport=cast(Any, transport)
        )

    async def aclose(self) -> None:
        await self.model.aclose()


class TieredAgent(Contender):
    """`Agent.run`: the whole framework path for one agent run (ledger, loop, typed output)."""

    layer = "tiered"

    def __init__(self, transport: str = "httpx2") -> None:
        self.transport = transport
        self.name = f"tiered/{transport}"

    async def setup(self, base_url: str) -> None:
        from tiered import Agent, tool

        self._handle = TieredModelHandle(base_url, self.transport)
        self._model = self._handle.model
        self._agent: Any = Agent(name="answerer", instructions=INSTRUCTIONS)
        self._tool_agent: Any = Agent(
            name="order_checker", instructions=INSTRUCTIONS, tools=[tool(lookup_order)]
        )

    async def single(self) -> str:
        r = await self._agent.run(PROMPT, model=self._model)
        return str(r.output)

    async def tool_run(self) -> str:
        r = await self._tool_agent.run(TOOL_PROMPT, model=self._model)
        return str(r.output)

    async def close(self) -> None:
        await self._handle.aclose()


class TieredSplit(TieredAgent):
    """`Agent.run` with the SDK call it makes timed from inside: the CPU spent outside
    `AsyncOpenAI.post` is the framework's own, measured on the very same calls.

    The model is given its client (`OpenAIModel(client=...)`), so the one per-request check
    an owned client makes (is this still the loop the client was built on?) is left out.
    """

    def __init__(self, transport: str = "httpx2") -> None:
        super().__init__(transport)
        self.name = f"tiered-split/{transport}"
        self.inside_s = 0.0
        """CPU seconds spent inside `AsyncOpenAI.post` so far."""

    async def setup(self, base_url: str) -> None:
        import time

        from tiered import Agent, tool
        from tiered.models import OpenAIModel

        client = _openai_client(base_url, self.transport)
        post = client.post

        async def timed_post(*args: Any, **kwargs: Any) -> Any:
            t = time.process_time()
            try:
                return await post(*args, **kwargs)
            finally:
                self.inside_s += time.process_time() - t

        client.post = timed_post
        self._client = client
        self._model = OpenAIModel(MODEL, client=client)
        self._agent = Agent(name="answerer", instructions=INSTRUCTIONS)
        self._tool_agent = Agent(
            name="order_checker", instructions=INSTRUCTIONS, tools=[tool(lookup_order)]
        )

    async def close(self) -> None:
        await self._model.aclose()
        await self._client.close()


# --- peers -------------------------------------------------------------------------------


class OpenAIAgentsSdk(Contender):
    """OpenAI Agents SDK (`openai-agents`), chat completions model, tracing off."""

    name = "openai-agents"
    layer = "peer"

    async def setup(self, base_url: str) -> None:
        agents = import_openai_agents()
        agents.set_tracing_disabled(True)
        self._client = _openai_client(base_url, "httpx2")
        model = agents.OpenAIChatCompletionsModel(model=MODEL, openai_client=self._client)
        self._runner = agents.Runner
        self._agent = agents.Agent(name="answerer", instructions=INSTRUCTIONS, model=model)
        self._tool_agent = agents.Agent(
            name="order_checker",
            instructions=INSTRUCTIONS,
            model=model,
            tools=[agents.function_tool(lookup_order)],
        )

    async def single(self) -> str:
        r = await self._runner.run(self._agent, PROMPT)
        return str(r.final_output)

    async def tool_run(self) -> str:
        r = await self._runner.run(self._tool_agent, TOOL_PROMPT)
        return str(r.final_output)

    async def close(self) -> None:
        await self._client.close()


class PydanticAi(Contender):
    """pydantic-ai (`pydantic-ai-slim[openai]`), chat completions model, instrumentation off."""

    name = "pydantic-ai"
    layer = "peer"

    async def setup(self, base_url: str) -> None:
        from pydantic_ai import Agent
        from pydantic_ai.models.openai import OpenAIChatModel
        from pydantic_ai.providers.openai import OpenAIProvider

        self._client = _openai_client(base_url, "httpx2")
        model = OpenAIChatModel(MODEL, provider=OpenAIProvider(openai_client=self._client))
        self._agent = Agent(model, instructions=INSTRUCTIONS)
        self._tool_agent = Agent(model, instructions=INSTRUCTIONS)
        self._tool_agent.tool_plain(lookup_order)

    async def single(self) -> str:
        r = await self._agent.run(PROMPT)
        return str(r.output)

    async def tool_run(self) -> str:
        r = await self._tool_agent.run(TOOL_PROMPT)
        return str(r.output)

    async def close(self) -> None:
        await self._client.close()


CONTENDERS: dict[str, Callable[[], Contender]] = {
    "floor/aiohttp": AiohttpFloor,
    "floor/httpx2": Httpx2Floor,
    "sdk-post/httpx2": lambda: SdkPost("httpx2"),
    "sdk-post/aiohttp": lambda: SdkPost("aiohttp"),
    "raw-sdk/httpx2": lambda: RawSdk("httpx2"),
    "raw-sdk/aiohttp": lambda: RawSdk("aiohttp"),
    "tiered-model/httpx2": lambda: TieredModel("httpx2"),
    "tiered-model/aiohttp": lambda: TieredModel("aiohttp"),
    "tiered/httpx2": lambda: TieredAgent("httpx2"),
    "tiered/aiohttp": lambda: TieredAgent("aiohttp"),
    "tiered-split/httpx2": lambda: TieredSplit("httpx2"),
    "tiered-split/aiohttp": lambda: TieredSplit("aiohttp"),
    "openai-agents": OpenAIAgentsSdk,
    "pydantic-ai": PydanticAi,
}
"""Every contender by name; peers that fail to import are reported and skipped."""


def make(name: str) -> Contender:
    return CONTENDERS[name]()
