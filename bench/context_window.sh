#!/usr/bin/env bash
# The context bound, measured (docs/models.md, "Context window"); from the repo root, nothing else running.
# 1. top-1 against the context read: 300 held-out documents, weights as served, whole context then 256..32 pieces.
# 2. latency: one server (gru, one core), cold (5-40 words) and cold-long (1,500 characters) at 10 req/s,
#    with the bound at 128 pieces and without it.
set -euo pipefail
PY=.venv/bin/python
for pair in "gru-email:../shared/data/aeslc-enron-email.jsonl.gz:email" "gru:../shared/data/aclImdb_v1.tar.gz:imdb"; do
  IFS=: read -r m corpus tag <<< "$pair"
  for w in 0 256 128 64 32; do
    $PY -m training.evaluate --model model/artifacts/$m.pt --corpus $corpus --split test --max-docs 300 --no-ksr \
      --precision fp16 --jobs 2 --context-pieces $w --out docs/results/context/${m}_${tag}300_w$w.json
  done
done
for w in 128 0; do
  port=$((18000 + w))
  NEXTWORD_MODELS=gru=model/artifacts/gru.pt NEXTWORD_THREADS=1 NEXTWORD_PORT=$port NEXTWORD_CONTEXT_PIECES=$w \
    NEXTWORD_LOG_LEVEL=warning taskset -c 0 $PY -m app > /dev/null 2>&1 &
  server=$!
  until curl -sf localhost:$port/readyz > /dev/null; do sleep 0.5; done
  for workload in cold cold-long; do
    taskset -c 1 $PY -m bench.loadgen --url http://127.0.0.1:$port --model gru --workload $workload --rate 10 \
      --duration 60 --warmup 5 --corpus ../shared/data/aclImdb_v1.tar.gz --max-docs 2000 --no-samples \
      --out bench/results/context/${workload}_w$w.json
  done
  kill $server
  wait $server || true
done
