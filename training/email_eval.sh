#!/usr/bin/env bash
# The e-mail report's measurements for one cell (gru or lstm): one torch thread each, two at a time
# for the e-mail model (training/subject_eval.sh). On a 2-core machine, from the repo root:
#   training/email_eval.sh gru; training/email_eval.sh lstm
set -x
cell=$1
EMAIL=../shared/data/aeslc-enron-email.jsonl.gz
IMDB=../shared/data/aclImdb_v1.tar.gz
R=docs/results/email
PY=.venv/bin/python
mkdir -p $R
# The e-mail model reads subjects: calibrated on dev mail read with them, measured with and without.
R=$R training/subject_eval.sh model/artifacts/$cell-email.pt
$PY -m training.evaluate --model model/artifacts/$cell.pt --corpus $EMAIL --split test --no-ksr \
    --precision fp16 --threads 1 --out $R/${cell}_test.json
$PY -m training.phrases --model model/artifacts/$cell.pt --corpus $EMAIL --fit-corpus $IMDB --fit-split test \
    --fit-docs 250 --eval-split test --eval-docs 400 --out $R/phrases_$cell --write-card --threads 1
$PY -m training.evaluate --model model/artifacts/$cell.pt --corpus $EMAIL --split test --max-docs 400 \
    --precision fp16 --threads 1 --out $R/${cell}_test400ksr.json
$PY -m training.evaluate --model model/artifacts/$cell-email.pt --corpus $IMDB --split test --max-docs 500 --no-ksr \
    --precision fp16 --threads 1 --out $R/${cell}-email_imdb500.json
$PY -m training.evaluate --model model/artifacts/$cell.pt --corpus $IMDB --split test --max-docs 500 --no-ksr \
    --precision fp16 --threads 1 --out $R/${cell}_imdb500.json
echo "lane $cell done"
