"""bench.sweep_options: the sweep's flags, --quick and the up-front duration estimate."""

from __future__ import annotations

from bench.configs import expand_configs, select_configs
from bench.sweep_options import estimate_seconds, options_from_args, parser


def test_default_sweep_fits_the_time_budget() -> None:
    opts = options_from_args(parser().parse_args([]))
    targets = expand_configs(opts.backends, opts.workloads, cache_off_workloads=opts.cache_off_workloads)
    assert 10 * 60 < estimate_seconds(opts, targets) <= 25 * 60
    assert opts.server_cpus != opts.generator_cpus or opts.server_cpus is None


def test_quick_options() -> None:
    opts = options_from_args(parser().parse_args(["--quick"]))
    assert opts.backends == ("gru",) and opts.rates() == [10.0, 40.0] and opts.search_steps == 0
    targets = select_configs(expand_configs(opts.backends, opts.workloads), opts.configs)
    assert {t.backend for t in targets} == {"gru"}
    assert "litserve-gru-cold" in [t.key for t in targets]
    assert estimate_seconds(opts, targets) < 5 * 60


def test_typing_runs_warm_up_long_enough_for_their_typists_opening_reads() -> None:
    opts = options_from_args(parser().parse_args(["--warmup", "1"]))
    assert opts.run.warmup_for("typing") == 3.0 and opts.run.warmup_for("cold") == 1.0
    assert options_from_args(parser().parse_args(["--warmup", "4"])).run.warmup_for("typing") == 4.0
    assert options_from_args(parser().parse_args(["--typing-warmup", "0"])).run.warmup_for("typing") == 1.0
    # The estimate counts it, for typing runs only.
    short = options_from_args(parser().parse_args(["--warmup", "1", "--typing-warmup", "1"]))
    for workload, more in (("typing", True), ("cold", False)):
        targets = select_configs(expand_configs(("gru",), (workload,)), [f"nextword-gru-batch-on-cache-on-{workload}"])
        assert (estimate_seconds(opts, targets) > estimate_seconds(short, targets)) == more
