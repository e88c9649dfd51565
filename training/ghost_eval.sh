#!/usr/bin/env bash
# Ghost text of the four bundled models, calibrated anew and measured (docs/models.md, "Ghost text"):
# the e-mail models fitted on 500 dev e-mails read with their subjects (written to the card), then
# measured on the test split with subjects, without, and at every keystroke inside a word of 300 of
# its e-mails; the review models fitted on 250 IMDB test reviews and measured on 400 test e-mails.
# Two lanes of one torch thread (about 30 minutes on two cores); from the repo root:
#   training/ghost_eval.sh
set -ex
EMAIL=../shared/data/aeslc-enron-email.jsonl.gz
IMDB=../shared/data/aclImdb_v1.tar.gz
A=model/artifacts
R=${R:-docs/results/email}
PY=.venv/bin/python
email_lane() {  # $1: an e-mail model's name
    $PY -m training.phrases --model $A/$1.pt --corpus $EMAIL --fit-split dev --fit-docs 500 --eval-split test \
        --subjects --threshold 0.4 --write-card --threads 1 --out "$R/phrases_$1_subject"
    $PY -m training.phrases --model $A/$1.pt --corpus $EMAIL --fit-split dev --fit-docs 500 --eval-split test \
        --keep-calibration --not-on-fit-docs --threshold 0.4 --threads 1 --out "$R/phrases_$1"
    $PY -m training.phrases --model $A/$1.pt --corpus $EMAIL --eval-split test --eval-docs 300 --keep-calibration \
        --threshold 0.4 --positions inside --conditioning search --threads 1 --out "$R/phrases_inside_search_$1"
}
review() {  # $1: a review model's name
    $PY -m training.phrases --model $A/$1.pt --corpus $EMAIL --fit-corpus $IMDB --fit-split test --fit-docs 250 \
        --eval-split test --eval-docs 400 --write-card --threads 1 --out "$R/phrases_$1"
}
email_lane gru-email &
email_lane lstm-email &
wait
review gru &
review lstm &
wait
echo "ghost text done"
