"""Embed tiered in a product: an HTTP endpoint that takes a goal and streams the run's
events to the caller as server-sent events, as they happen.

Shows `Orchestrator.stream` behind a Starlette endpoint, `event.to_dict()` as the wire
form, and cancellation on disconnect.

`POST /runs` with `{"goal": "..."}` answers `text/event-stream`: one SSE message per
event (`event: subtask.finished`, `data: {...}` from `event.to_dict()`), ending with
`run.finished`, which carries the whole result. If the caller hangs up, the run is
cancelled and its model calls stop: nobody pays for an answer nobody reads.

    pip install starlette uvicorn
    python examples/embed_service.py            # serves examples/triage.py on :8000
    curl -N -X POST localhost:8000/runs -d '{"goal": "Triage the inbox"}'
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tiered import Limits, Orchestrator, Tier, Workflow, load_workflow
from tiered.models import Model

WORKFLOW = Path(__file__).with_name("triage.py")


def sse(name: str, data: Mapping[str, Any]) -> str:
    """One server-sent event."""
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def create_app(
    workflow: Workflow,
    *,
    models: Mapping[Tier, Model] | None = None,
    limits: Limits | None = None,
) -> Starlette:
    """The service: one orchestrator for the workflow, one streamed run per request."""
    orchestrator = Orchestrator(
        workflow.executors,
        planner=workflow.planner,
        models=models,
        limits=limits,
        verify=workflow.verify,
    )

    async def run(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": 'send JSON like {"goal": "..."}'}, status_code=400)
        goal = body.get("goal") if isinstance(body, dict) else None
        if not isinstance(goal, str) or not goal.strip():
            return JSONResponse({"error": 'send JSON like {"goal": "..."}'}, status_code=400)

        async def events() -> AsyncIterator[str]:
            # Starlette cancels this iterator when the client disconnects; leaving the
            # `async with` then cancels the run and every model call still in flight.
            async with orchestrator.stream(goal, deps=workflow.deps) as stream:
                async for event in stream:
                    yield sse(event.name, event.to_dict())

        return StreamingResponse(events(), media_type="text/event-stream")

    async def index(request: Request) -> Response:
        return JSONResponse(
            {
                "post": "/runs",
                "body": {"goal": workflow.goal},
                "executors": list(orchestrator.executors),
            }
        )

    return Starlette(routes=[Route("/", index), Route("/runs", run, methods=["POST"])])


def main() -> None:
    """Serve the triage workflow on 127.0.0.1:8000 with the environment's ladder."""
    import uvicorn

    uvicorn.run(create_app(load_workflow(WORKFLOW)), host="127.0.0.1", port=8000)


if __name__ == "__main__":
    main()
