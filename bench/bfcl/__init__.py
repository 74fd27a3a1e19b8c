"""BFCL v4 (Berkeley Function Calling Leaderboard) through `tiered eval`, on any ladder.

The data and BFCL's AST checker come from the `bfcl-eval` wheel, fetched with
`pip download --no-deps` and read as a zip (its declared dependencies are never
installed). `python -m bench.bfcl --help` runs it; `bench/bfcl/evaluation.py` is the
evaluation file `tiered eval` loads.
"""
