#!/usr/bin/env bash
# Tokens the GRU's e-mail adaptation reads in 90 s on two threads, per arm (autocast:batch).
# Run alone on the machine, from the repo root: bench/train_speed.sh [fp32:32 bf16:32 bf16:64 ...]
set -euo pipefail
PY=${PY:-.venv/bin/python}
arms=("${@:-fp32:32 bf16:32 bf16:64}")
out=runs/train_speed
mkdir -p $out
for arm in ${arms[*]}; do
  ac=${arm%:*}; bs=${arm#*:}
  $PY -m training.adapt --from model/artifacts/gru.pt --corpus ../shared/data/aeslc-enron-email.jsonl.gz \
    --minutes 1.5 --threads 2 --autocast "$ac" --batch-size "$bs" --average-last 1 --out $out/gru-$ac-$bs.pt \
    --work-dir $out/gru-$ac-$bs --data-dir runs/adapt/data-email > $out/$ac-$bs.log 2>&1
  steps=$(grep -o 'done: [0-9]* steps' $out/$ac-$bs.log | grep -o '[0-9]*')
  echo "$arm: $steps steps, $((steps * bs * 64)) tokens in 90 s"
done
