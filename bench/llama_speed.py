"""The machine's raw llama.cpp speed, to record beside every local-model bench figure.

`python -m bench.llama_speed [--model qwen2.5-coder-1.5b]`: loads the embedded weights
the way `tiered` does (2 threads, 4 slots of 8,192 tokens), reads a fresh ~900-token
prompt and writes 120 tokens at temperature 0, twice. This VM has measured 33 / 7.5 tok/s
(prompt / generation) on a slow evening and 61 / 22 on a fast morning, so a wall time
means little without these two numbers from the same hour.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

_ITEMS = ("kettle", "toaster", "blender")


def _prompt(variant: int) -> str:
    lines = " ".join(
        f"Item {i} is a {_ITEMS[i % 3]} that costs {i * 7} dollars." for i in range(60)
    )
    return (
        "<|im_start|>system\nYou summarise lists.<|im_end|>\n<|im_start|>user\n"
        f"{lines}\nWrite a long story about these items.{' ' * variant}<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def measure(model: str, threads: int = 2, runs: int = 2) -> list[str]:
    """One line per run: load time, prompt and generation rates (tokens per second)."""
    import xllamacpp

    from tiered.models._weights import ensure_weights, resolve_weights

    params = xllamacpp.CommonParams()
    params.model.path = str(ensure_weights(resolve_weights(model)))
    params.n_ctx = 8192 * 4
    params.n_parallel = 4
    params.ctx_shift = False
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.verbosity = -1
    started = time.perf_counter()
    server = xllamacpp.Server(params)
    load_s = time.perf_counter() - started
    lines = []
    for run in range(runs):
        seen: dict[str, Any] = {}

        def on_chunk(chunk: Any, seen: dict[str, Any] = seen) -> bool:
            if isinstance(chunk, dict) and "timings" in chunk:
                seen["timings"] = chunk["timings"]
            return False

        body = {
            "prompt": _prompt(run),  # a different tail each run: the prompt is read fresh
            "n_predict": 120,
            "temperature": 0,
            "cache_prompt": False,
            "ignore_eos": True,
            "stream": True,
        }
        server.handle_completions(body, on_chunk)
        t = seen["timings"]
        lines.append(
            f"{model}: load {load_s:.1f} s, prompt {t['prompt_n']} tok at "
            f"{t['prompt_per_second']:.1f} tok/s, generation {t['predicted_n']} tok at "
            f"{t['predicted_per_second']:.1f} tok/s"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.llama_speed")
    parser.add_argument("--model", default="qwen2.5-coder-1.5b")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    for line in measure(args.model, args.threads):
        print(line, flush=True)


if __name__ == "__main__":
    main()
