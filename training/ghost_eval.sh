#!/usr/bin/env bash
# Ghost text of the four bundled models, calibrated anew and measured (docs/models.md, "Ghost text"):
# the e-mail models fitted at the word boundaries of 500 dev e-mails read with their subjects
# (written to the card), then measured on the test split with subjects and without; inside words
# fitted apart at every keystroke of 200 dev e-mails and measured on 300 test e-mails; the review
# models fitted on 250 IMDB test reviews and measured on 400 test e-mails. Two lanes of one torch
# thread (about 45 minutes on two cores); from the repo root:
#   training/ghost_eval.sh            # everything
#   training/ghost_eval.sh inside     # only the e-mail models' calibrations inside words
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
    inside "$1"
}
inside() {  # $1: an e-mail model's name; inside words, fitted apart on 200 dev e-mails (no subjects)
    $PY -m training.phrases --model $A/$1.pt --corpus $EMAIL --fit-split dev --fit-docs 200 \
        --eval-split test --eval-docs 300 --threshold 0.4 --positions inside --conditioning search --write-card \
        --threads 1 --out "$R/phrases_inside_search_$1"
}
review() {  # $1: a review model's name
    $PY -m training.phrases --model $A/$1.pt --corpus $EMAIL --fit-corpus $IMDB --fit-split test --fit-docs 250 \
        --eval-split test --eval-docs 400 --write-card --threads 1 --out "$R/phrases_$1"
}
if [ "${1:-}" = inside ]; then
    inside gru-email &
    inside lstm-email &
    wait
    exit 0
fi
email_lane gru-email &
email_lane lstm-email &
wait
review gru &
review lstm &
wait
echo "ghost text done"
