#!/usr/bin/env bash
# The report's first table: server CPU-ms per answered request, cold and typing, nextword (batching
# on/off x cache on/off) and LitServe, at 8 req/s, three runs. The first run also measures the model
# alone and the overload (P4: saturation throughput over the model alone at the same batch).
#   bench/cost_table.sh            # from the repo root, on an otherwise idle machine; ~15 minutes
#   R=bench/results/cost_xeon REPORT=bench/results/REPORT_xeon.md bench/cost_table.sh   # another host's, beside it
set -euo pipefail
PY=${PY:-.venv/bin/python}
R=${R:-bench/results/cost}
REPORT=${REPORT:-bench/results/REPORT.md}
mkdir -p $R
for n in 1 2 3; do
  skip=model-alone,overload; [ "$n" = 1 ] && skip=""
  $PY -m bench.sweep --backends gru --workloads cold,typing --cache-off-workloads cold,typing \
      --litserve-workloads cold,typing --ladder 8 --search-steps 0 --duration 15 --skip "$skip" \
      --litserve-grid 32:5 --overload-seconds 20 --corpus ../shared/data/aclImdb_v1.tar.gz --out $R/sweep_cost_$n.json
done
$PY -m bench.report --results $R/sweep_cost_1.json --cost-run $R/sweep_cost_1.json --cost-run $R/sweep_cost_2.json \
    --cost-run $R/sweep_cost_3.json --cost-rate 8 --out "$REPORT"
