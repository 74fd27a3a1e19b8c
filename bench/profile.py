"""Where the client CPU and memory go: `python -m bench.profile WHAT [--contender NAME]`.

    python -m bench.profile sequential --contender tiered/aiohttp   # cProfile, 3,000 calls
    python -m bench.profile fanout --contender tiered/httpx2         # cProfile, 5,000 / 500
    python -m bench.profile orchestrated --transport aiohttp          # cProfile, 1,000 subtasks
    python -m bench.profile memory --contender tiered/aiohttp        # tracemalloc at 500 in flight
    python -m bench.profile tree --contender tiered/httpx2            # pyinstrument call tree

Each prints the top entries; `--by` picks cProfile's sort key (tottime or cumulative).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

from bench.clients import make
from bench.server import SimServer
from bench.worker import _pool, orchestrated

__all__ = ("main",)


def _cprofile(
    run: Callable[[], Awaitable[Any]], *, by: str, top: int, only: str | None = None
) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    asyncio.run(run())  # type: ignore[arg-type]
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).sort_stats(by)
    if only:
        stats.print_stats(only, top)
    else:
        stats.print_stats(top)
    return out.getvalue()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("what", choices=["sequential", "fanout", "orchestrated", "memory", "tree"])
    parser.add_argument("--contender", default="tiered/httpx2")
    parser.add_argument("--transport", default="aiohttp")
    parser.add_argument("--n", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=500)
    parser.add_argument("--by", default="tottime")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--only", help="a regex on file paths, e.g. src/tiered")
    args = parser.parse_args(argv)

    with SimServer() as sim:
        url = sim.base_url
        if args.what in ("sequential", "tree"):
            sim.configure(mode="zero")
        else:
            sim.configure(mode="fixed", fixed_ms=200)
        n = args.n or {"sequential": 3000, "tree": 3000, "orchestrated": 1000}.get(args.what, 5000)

        async def setup_and(run: Callable[[Any], Awaitable[None]]) -> None:
            c = make(args.contender)
            await c.setup(url)
            for _ in range(20):
                await c.single()
            await run(c)
            await c.close()

        async def sequential(c: Any) -> None:
            for _ in range(n):
                await c.single()

        async def fanout(c: Any) -> None:
            await _pool(n, args.concurrency, lambda _: c.single())

        opts: dict[str, Any] = {"by": args.by, "top": args.top, "only": args.only}
        if args.what == "sequential":
            print(_cprofile(lambda: setup_and(sequential), **opts))
        elif args.what == "fanout":
            print(_cprofile(lambda: setup_and(fanout), **opts))
        elif args.what == "orchestrated":
            print(
                _cprofile(
                    lambda: orchestrated(url, args.transport, n=n, concurrency=100),
                    by=args.by,
                    top=args.top,
                    only=args.only,
                )
            )
        elif args.what == "tree":
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0002)
            profiler.start()
            asyncio.run(setup_and(sequential))
            profiler.stop()
            print(profiler.output_text(unicode=False, color=False, show_all=False))
        else:

            async def held(c: Any) -> None:
                # every call in flight at once, then a snapshot while they wait on the server
                tracemalloc.start(1)
                before = tracemalloc.take_snapshot()
                tasks = [asyncio.ensure_future(c.single()) for _ in range(args.concurrency)]
                await asyncio.sleep(0.1)
                during = tracemalloc.take_snapshot()
                await asyncio.gather(*tasks)
                tracemalloc.stop()
                stats = during.compare_to(before, "filename")
                total = sum(s.size_diff for s in stats)
                print(
                    f"{args.contender}: {total / args.concurrency / 1024:.1f} KB of Python "
                    f"objects per in-flight call ({args.concurrency} in flight)"
                )
                for s in stats[: args.top]:
                    print(f"{s.size_diff / args.concurrency:10.0f} B/call  {s.traceback[0]}")

            asyncio.run(setup_and(held))


if __name__ == "__main__":
    main()
