"""The machine's raw llama.cpp speed, to record beside every local-model bench figure.

`python -m bench.llama_speed [--model qwen2.5-coder-1.5b]`: loads the embedded weights
in tiered's own server (2 threads, 4 slots of 8,192 tokens), reads a fresh ~900-token
prompt and writes 120 tokens at temperature 0, twice. This VM has measured 33 / 7.5 tok/s
(prompt / generation) on a slow evening and 61 / 22 on a fast morning, so a wall time
means little without these two numbers from the same hour.
"""

from __future__ import annotations

import argparse
import threading
import time

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
    """One line per run: load time, prompt and generation rates (tokens per second).

    The server is tiered's own (`models._local_server.Server`, the shipped slot count and
    context), so the figures are the ones a run gets; `cache_prompt` off reads the prompt
    fresh and saves no slot."""
    from tiered.models._local import DEFAULT_N_CTX, DEFAULT_SLOTS
    from tiered.models._local_server import Server, ServerConfig
    from tiered.models._weights import resolve_weights

    config = ServerConfig(
        n_ctx=DEFAULT_N_CTX, threads=threads, parallel=DEFAULT_SLOTS, verbose=False
    )
    server = Server(resolve_weights(model), config)
    started = time.perf_counter()
    server.start()
    load_s = time.perf_counter() - started
    lines = []
    for run in range(runs):
        body = {
            "prompt": _prompt(run),  # a different tail each run: the prompt is read fresh
            "n_predict": 120,
            "temperature": 0,
            "cache_prompt": False,
            "ignore_eos": True,
        }
        t = server._stream(body, threading.Event(), None)["timings"]
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
