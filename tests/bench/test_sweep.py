"""bench.sweep without servers: the stages' bookkeeping and the command line up to the first server."""

from __future__ import annotations

from bench import sweep as sweep_module
from bench.sweep import Sweep, main
from bench.sweep_options import DESCRIPTION, options_from_args, parser


def test_overload_probe_rate_defaults_to_twice_the_model_alone_best(tmp_path) -> None:
    opts = options_from_args(parser().parse_args(["--out", str(tmp_path / "s.json")]))
    sweep = Sweep(opts, [])
    assert sweep._model_alone_best("gru") is None  # model alone not run: the caller falls back
    sweep.results["model_alone"] = {"results": {"gru": {"batch_sizes": {
        "1": {"requests_per_s": 120.0}, "64": {"requests_per_s": 245.0}, "8": {"requests_per_s": 190.0}}}}}
    assert sweep._model_alone_best("gru") == 245.0 and sweep._model_alone_best("lstm") is None


def test_dry_run_lists_the_selected_configurations_and_the_estimate(capsys) -> None:
    assert main(["--dry-run", "--quick"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:-1] == ["nextword-gru-batch-on-cache-on-cold", "nextword-gru-batch-off-cache-on-cold",
                          "nextword-gru-batch-on-cache-on-typing", "nextword-gru-batch-on-cache-off-typing",
                          "litserve-gru-cold"]
    assert lines[-1].startswith("estimated ") and lines[-1].endswith(" min")


def test_help_describes_the_sweep_as_its_docstring_does() -> None:
    # --help is built in bench.sweep_options; the sweep's docstring is where a reader looks.
    assert sweep_module.__doc__.split("\n\n")[0] == DESCRIPTION
    assert parser().description == DESCRIPTION
