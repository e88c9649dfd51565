#!/usr/bin/env bash
# The one prepared GPU job: train the GRU and the LSTM side by side on one GPU, score
# their snapshots for the learning curve on the spare CPU cores while they train, export
# both, then evaluate the exports on every core (top-k on the 2,000-review set, keystroke
# savings on its first 200), all inside a fixed wall-clock budget.
#
#   python -m training.stage --data-dir runs/imdb8k --corpus ../shared/data/aclImdb_v1.tar.gz --out .device
#   IN=.device OUT=/tmp/out training/gpu_job.sh
#
# IN holds what the job reads (the device machine sees no ../shared): the prepared corpus
# of `training.train` (train.npy.xz, valid.npy, tokenizer.model, summary.json) and the
# evaluation sets as JSONL (imdb-test-2000.jsonl, imdb-test-200.jsonl: the seeded samples
# of `training.evaluate --split test --max-docs N --seed 0`). OUT receives the best
# checkpoints without optimiser state (split into 15 MB parts) and results.tar.gz (logs,
# curve points, evaluation shards). Everything that finished before the budget ran out is
# kept. Knobs: BUDGET (s), TRAIN_MINUTES, CONFIG, DEVICE, CURVE_DOCS, CURVE_JOBS, SHARDS, and
# INIT_FROM: a folder holding gru.pt / lstm.pt (e.g. model/artifacts, which travels with the
# working tree) to continue training those weights instead of starting from scratch
# (`training.train --init-from`; IN must then hold a corpus tokenised by their tokenizer,
# which `training.stage --tokenizer-from` checks or prepares).
set -uo pipefail
START=$(date +%s)
BUDGET=${BUDGET:-570}
TRAIN_MINUTES=${TRAIN_MINUTES:-4}
CONFIG=${CONFIG:-training/configs/imdb-gpu.json}
DEVICE=${DEVICE:-auto}
IN=${IN:-.device}
OUT=${OUT:-/tmp/nextword-gpu-out}
WORK=${WORK:-/tmp/nextword-gpu}
TOPK_SET=${TOPK_SET:-$IN/imdb-test-2000.jsonl}
KSR_SET=${KSR_SET:-$IN/imdb-test-200.jsonl}
CURVE_DOCS=${CURVE_DOCS:-100}
CURVE_JOBS=${CURVE_JOBS:-12}
SHARDS=${SHARDS:-8}
INIT_FROM=${INIT_FROM:-}
PY=${PY:-python3}
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 PYTHONWARNINGS=ignore::DeprecationWarning

elapsed() { echo $(( $(date +%s) - START )); }
left() { echo $(( BUDGET - $(date +%s) + START )); }
say() { echo "[$(elapsed)s] $*"; }
package() {
  tar czf "$OUT/results.tar.gz" -C "$WORK" logs points eval \
    $(cd "$WORK" && ls runs/*/log.jsonl 2>/dev/null) 2>/dev/null
  say "packaged results: $(du -h "$OUT/results.tar.gz" | cut -f1)"
}
trap package EXIT

mkdir -p "$OUT" "$WORK/data" "$WORK/logs" "$WORK/points" "$WORK/eval" "$WORK/runs"
say "$(nproc --all) cores; $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo no GPU)"
$PY -c "import torch, sentencepiece, numpy, tqdm; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" || exit 1

# 1. the prepared corpus
$PY - "$IN" "$WORK/data" <<'PYEOF' || exit 1
import lzma, shutil, sys
from pathlib import Path
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
with lzma.open(src / "train.npy.xz") as fi, open(dst / "train.npy", "wb") as fo:
    shutil.copyfileobj(fi, fo, 1 << 22)
for name in ("valid.npy", "tokenizer.model", "summary.json"):
    shutil.copy(src / name, dst / name)
PYEOF
say "corpus ready"

# 2. both cells at once on the one GPU; snapshots scored on spare cores as they appear
train_pids=()
for cell in gru lstm; do
  init=()
  [ -n "$INIT_FROM" ] && init=(--init-from "$INIT_FROM/$cell.pt")
  $PY -m training.train --config "$CONFIG" --cell "$cell" --device "$DEVICE" --data-dir "$WORK/data" \
    --out "$WORK/runs/$cell" --max-minutes "$TRAIN_MINUTES" ${init[@]+"${init[@]}"} >"$WORK/logs/train-$cell.log" 2>&1 &
  train_pids+=($!)
done
training() { for p in "${train_pids[@]}"; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
curve_pids=()
scored=" "
score_new_snapshots() {
  for snap in "$WORK"/runs/*/snapshots/tokens_*.pt; do
    [ -e "$snap" ] || continue
    case "$scored" in *" $snap "*) continue ;; esac
    [ $(( $(date +%s) - $(stat -c %Y "$snap") )) -ge 3 ] || continue   # fully written
    local running=0
    for p in "${curve_pids[@]}"; do kill -0 "$p" 2>/dev/null && running=$((running + 1)); done
    [ "$running" -lt "$CURVE_JOBS" ] || return 0
    scored="$scored$snap "
    nice -n 10 $PY -m training.curve --snapshots "$snap" --tokenizer "$WORK/data/tokenizer.model" \
      --corpus "$TOPK_SET" --max-docs "$CURVE_DOCS" --threads 1 --points-dir "$WORK/points" \
      >>"$WORK/logs/curve.log" 2>&1 &
    curve_pids+=($!)
  done
}
while training; do score_new_snapshots; sleep 3; done
for p in "${train_pids[@]}"; do wait "$p" || say "training process $p failed"; done
tail -n 3 "$WORK"/runs/*/log.jsonl
# Keep scoring the last snapshots (niced) while the exports are evaluated.
(while true; do score_new_snapshots; sleep 3; done) &
curve_loop=$!

# 3. weights for the repository (exported there) and TorchScript exports for the evaluation here
for cell in gru lstm; do
  [ -e "$WORK/runs/$cell/best.pt" ] || { say "no best.pt for $cell"; continue; }
  $PY - "$WORK/runs/$cell/best.pt" "$WORK/$cell-best.pt" <<'PYEOF'
import sys, torch
ckpt = torch.load(sys.argv[1], map_location="cpu", weights_only=False)
for key in ("optimizer", "torch_rng", "stream_position"):
    ckpt.pop(key, None)
torch.save(ckpt, sys.argv[2])
print(sys.argv[2], ckpt["tokens_seen"], "tokens", ckpt["val_loss"], "val loss")
PYEOF
  split -b 15M "$WORK/$cell-best.pt" "$OUT/$cell-best.pt.part-"
  $PY -m model.export --checkpoint "$WORK/$cell-best.pt" --out "$WORK/$cell.pt" >>"$WORK/logs/export.log" 2>&1 \
    || say "export of $cell failed"
done
say "weights saved: $(ls "$OUT" | tr '\n' ' ')"

# 4. evaluation on every core, in shards that merge exactly (training.evaluate --merge)
evaluate() {  # name, set, extra flags, seconds
  local name=$1 set=$2 flags=$3 seconds=$4 pids=()
  for cell in gru lstm; do
    [ -e "$WORK/$cell.pt" ] || continue
    for ((i = 0; i < SHARDS; i++)); do
      timeout "$seconds" $PY -m training.evaluate --model "$WORK/$cell.pt" --corpus "$set" --threads 1 \
        --shard "$i/$SHARDS" $flags --out "$WORK/eval/$name-$cell-$i.json" >>"$WORK/logs/eval-$name.log" 2>&1 &
      pids+=($!)
    done
  done
  for p in "${pids[@]}"; do wait "$p"; done
  for cell in gru lstm; do
    local parts=("$WORK"/eval/"$name-$cell"-*.json)
    [ -e "${parts[0]}" ] || continue
    $PY -m training.evaluate --merge "${parts[@]}" --out "$WORK/eval/merged-$name-$cell.json" --json
  done
}
say "top-k on $TOPK_SET, $(left)s left"
evaluate topk "$TOPK_SET" --no-ksr $(( $(left) - 100 ))
kill "$curve_loop" 2>/dev/null
pkill -f "training.curve" 2>/dev/null
if [ "$(left)" -gt 60 ]; then
  say "keystroke savings on $KSR_SET, $(left)s left"
  evaluate ksr "$KSR_SET" "" $(( $(left) - 20 ))
fi
say "done"
