#!/usr/bin/env bash
# Latency by window within a typing run: the typing plan of 3a6c6ad (every typist's first, cold request
# within 0.3 s) against the plan of 7e5da94 (typists join over the warm-up), one server, 99 typists
# (~440 req/s), 1-s warm-up + 15 s, four interleaved rounds. From the repo root on an idle machine:
#   bench/results/typing_opening_reads/run.sh     -> bench/results/typing_opening_reads/windows.json
set -euo pipefail
PY=${PY:-.venv/bin/python}
OLD=/tmp/nextword-plan-3a6c6ad
[ -d "$OLD" ] || git worktree add --detach "$OLD" 3a6c6ad
OUT=$(mktemp -d)
NEXTWORD_MODELS=gru=model/artifacts/gru.pt NEXTWORD_PRECISION=fp16 NEXTWORD_THREADS=1 NEXTWORD_PORT=8123 \
    taskset -c 0 $PY -m app > "$OUT/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER' EXIT
for _ in $(seq 60); do curl -sf localhost:8123/readyz > /dev/null && break; sleep 1; done
for round in 1 2 3 4; do
  arms="old new"; [ $((round % 2)) = 0 ] && arms="new old"
  for arm in $arms; do
    dir=.; [ $arm = old ] && dir=$OLD
    (cd $dir && taskset -c 1 "$OLDPWD/$PY" -m bench.loadgen --url http://127.0.0.1:8123 --model gru --workload typing \
        --typists 99 --duration 15 --warmup 1 --seed $((round + 10)) --corpus "$OLDPWD/../shared/data/aclImdb_v1.tar.gz" \
        --out "$OUT/${arm}_$round.json" > /dev/null 2>&1)
    sleep 2
  done
done
$PY - "$OUT" <<'PY'
import json, sys
import numpy as np
out = sys.argv[1]
windows = ((0, 1), (1, 2), (2, 3), (3, 6), (6, 16))
result = {"command": "bench/results/typing_opening_reads/run.sh", "typists": 99, "warmup_s": 1.0, "rounds": {}}
for arm in ("old", "new"):
    for r in (1, 2, 3, 4):
        s = json.load(open(f"{out}/{arm}_{r}.json"))["samples"]
        t, lat = np.array(s["intended_s"]), np.array(s["latency_ms"], float)
        result["rounds"][f"{arm}_{r}"] = {
            f"{a}-{b}s": {"n": int(((t >= a) & (t < b)).sum()),
                          "p50_ms": round(float(np.percentile(lat[(t >= a) & (t < b)], 50)), 1),
                          "p99_ms": round(float(np.percentile(lat[(t >= a) & (t < b)], 99)), 1)}
            for a, b in windows}
json.dump(result, open("bench/results/typing_opening_reads/windows.json", "w"), indent=1)
PY
