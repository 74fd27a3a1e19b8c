#!/bin/sh
# The BFCL eval in chunks, each under the heavy-job lock (<= 10 min) and after the lead's
# quiet window: bench/bfcl/chunks.sh OUT PER_CATEGORY CATEGORY:TIER...
# A chunk writes OUT/CATEGORY-TIER/{results.json,outcomes.jsonl,trace.jsonl,calibration.json,
# machine.txt}; `python -m bench.bfcl merge OUT` joins them for `report`. BFCL_IDS, if set,
# is passed on (finish the cases a chunk cut off by its deadline; CHUNK_TAG names its folder).
set -u
out=$1; per=$2; shift 2
py=${PYTHON:-python}
for unit in "$@"; do
  cat=${unit%%:*}; tier=${unit#*:}
  d=$out/$cat-$tier${CHUNK_TAG:-}
  mkdir -p "$d"
  while :; do
    while [ -e /tmp/tiered-quiet ]; do sleep 20; done
    # a quiet window that opened while we waited for the lock: give the lock back, wait again
    flock /tmp/tiered-heavy.lock sh -c '
      [ -e /tmp/tiered-quiet ] && exit 75
      echo "before $(date -u +%FT%TZ) $(uptime)" >> "$1/machine.txt"
      BFCL_CATEGORIES=$2 BFCL_PER_CATEGORY=$3 BFCL_TRACE=$1/trace.jsonl \
        "$4" -m tiered eval bench/bfcl/evaluation.py --tiers "$5" --concurrency 2 \
        --timeout 300 --deadline 540 --quiet --calibration "$1/calibration.json" \
        --outcomes "$1/outcomes.jsonl" --json > "$1/results.json" 2> "$1/stderr.txt"
      rc=$?
      echo "after  $(date -u +%FT%TZ) $(uptime) rc=$rc" >> "$1/machine.txt"
      exit 0' _ "$d" "$cat" "$per" "$py" "$tier"
    [ $? -eq 75 ] || break
  done
  tail -2 "$d/machine.txt"
done
