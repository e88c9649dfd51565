#!/usr/bin/env bash
# Personal adaptation, measured for one cell and one sender of the e-mail corpus (docs/models.md,
# "Adapting to one person's mail"). From the repo root, alone on the machine (adapting takes both
# cores): training/personal_eval.sh gru shackleton-s [BASE]
# BASE is the shared model adapted from (default model/artifacts/CELL-email.pt); R and W name the
# results and work folders (default docs/results/personal and runs/personal).
set -ex
cell=$1
owner=$2
base=${3:-model/artifacts/$cell-email.pt}
base_name=$(basename "$base" .pt)
EMAIL=../shared/data/aeslc-enron-email.jsonl.gz
R=${R:-docs/results/personal}
W=${W:-runs/personal}
PY=.venv/bin/python
mkdir -p $R $W
$PY -m training.owner_mail --corpus $EMAIL --owner "$owner" --out $W/$owner.jsonl
$PY -m training.adapt --from "$base" --corpus $W/$owner.jsonl --personal \
    --out $W/$cell-$owner.pt --work-dir $W/work-$cell-$owner --data-dir $W/data-$owner --threads 2 --autocast bf16
cp $W/work-$cell-$owner/lineage.json $R/$cell-$owner.lineage.json
cp $W/work-$cell-$owner/log.jsonl $R/$cell-$owner.log.jsonl
for model in $base_name=$base $cell-$owner=$W/$cell-$owner.pt; do
    name=${model%%=*}
    path=${model#*=}
    # the owner's own test mail: top-k, word perplexity, keystroke savings; ghost text at the served threshold
    # without and with each e-mail's subject (as the demo sends it to a model that reads subjects)
    for tag in "" _subject; do
        $PY -m training.evaluate --model $path --corpus $W/$owner.jsonl --split test ${tag:+--subjects} \
            --precision fp16 --threads 2 --out $R/${owner}_$name$tag.json
        $PY -m training.phrases --model $path --corpus $W/$owner.jsonl --eval-split test --keep-calibration \
            ${tag:+--subjects} --threshold 0.4 --threads 2 --out $R/${owner}_phrases_$name$tag
    done
    # everyone's mail: what the personal model forgets (300 test e-mails, seeded; the shared model's
    # figure is the same for every owner, so it is measured once)
    [ "$name" = "$base_name" ] && [ -f $R/email300_$name.json ] && continue
    $PY -m training.evaluate --model $path --corpus $EMAIL --split test --max-docs 300 --no-ksr --precision fp16 \
        --threads 2 --out $R/email300_$name.json
done
