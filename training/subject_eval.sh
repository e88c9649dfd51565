#!/usr/bin/env bash
# Does reading the subject help? One e-mail model that reads subjects, with and without its
# e-mails' subjects, on the test split: top-1 on all of it, keystroke savings on the seeded 400,
# ghost text at word boundaries. Two lanes of one torch thread; from the repo root:
#   training/subject_eval.sh runs/subject/gru-email.pt
# The calibration is fitted on the dev split read as served (with subjects) and written to the card;
# ghost text without a subject is then measured on the same test e-mails with that calibration.
set -ex
model=$1
name=$(basename "$model" .pt)
EMAIL=../shared/data/aeslc-enron-email.jsonl.gz
R=${R:-docs/results/email/subject}
PY=.venv/bin/python
mkdir -p "$R"
lane() {  # one lane: the same measurements with or without subjects ($1: "" or --subjects)
    tag=${1:+_subject}
    $PY -m training.evaluate --model "$model" --corpus $EMAIL --split test --no-ksr $1 \
        --precision fp16 --threads 1 --out "$R/${name}_test${tag}.json"
    $PY -m training.evaluate --model "$model" --corpus $EMAIL --split test --max-docs 400 $1 \
        --precision fp16 --threads 1 --out "$R/${name}_test400ksr${tag}.json"
}
$PY -m training.phrases --model "$model" --corpus $EMAIL --fit-split dev --fit-docs 500 --eval-split test \
    --subjects --write-card --threshold 0.4 --threads 1 --out "$R/phrases_${name}_subject" &
lane "" &
wait
lane --subjects &
$PY -m training.phrases --model "$model" --corpus $EMAIL --fit-split dev --fit-docs 500 --eval-split test \
    --keep-calibration --not-on-fit-docs --threshold 0.4 --threads 1 --out "$R/phrases_${name}" &
wait
echo "$name done"
