#!/usr/bin/env bash
# The HTTP path's server CPU per request: a commit before the change against this checkout, under the
# profile (bench.profile, interleaved rounds) and as process CPU against other runners and the stack's
# floor (bench.ab). Results in bench/results/http_path/, read in docs/http_path.md.
#   bench/http_path.sh BASE_COMMIT        # from the repo root, on an otherwise idle machine
set -euo pipefail
base=${1:?the commit to compare against}
wt=/tmp/nextword-http-base
[ -d "$wt" ] || git worktree add --detach "$wt" "$base"
PY=${PY:-.venv/bin/python}
CORPUS=../shared/data/aclImdb_v1.tar.gz
R=bench/results/http_path
mkdir -p $R
for round in 1 2; do
  for arm in base new; do
    dir=.; [ $arm = base ] && dir=$wt
    $PY -m bench.profile --backend gru --rate 40 --seconds 45 --rate-hz 200 --app-dir $dir --corpus $CORPUS \
        --out $R/profile_${arm}_$round.json
  done
done
taskset -c 1 $PY -m bench.ab --corpus $CORPUS --model gru --rates 40 --duration 20 --rounds 2 \
    --arm base=$wt --arm new=. --arm granian=.:NEXTWORD_RUNNER=granian \
    --arm h11-asyncio=.:NEXTWORD_HTTP=h11:NEXTWORD_LOOP=asyncio --arm floor=.@bench.floor_app \
    --out $R/ab_runners.json
