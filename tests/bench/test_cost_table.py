"""The report's CPU-ms table: spread over runs, the ratio to LitServe, rows a run did not measure."""

from __future__ import annotations

from bench.cost_table import cost_rows, cost_section


def _cfg(key: str, server: str, workload: str, cpu_by_rate: dict[float, float], passed: bool = True) -> dict:
    return {"key": key, "server": server, "backend": "gru", "workload": workload, "batching": True, "cache": True,
            "settings": {"max_batch_size": 32, "batch_timeout_ms": 5.0},
            "points": [{"rate": r, "server_cpu_ms_per_request": v, "passed": passed} for r, v in cpu_by_rate.items()]}


def _run(nw: float, ls: float, typing: bool = False) -> dict:
    configs = [_cfg("nw-cold", "nextword", "cold", {10.0: nw, 20.0: nw / 2}), _cfg("ls-cold", "litserve", "cold",
                                                                                     {10.0: ls}, passed=False)]
    if typing:
        configs.append(_cfg("nw-typing", "nextword", "typing", {20.0: 3.0, 12.0: 4.0}))
    return {"meta": {"command": "python -m bench.sweep ...", "git": {"commit": "abc1234"}}, "configs": configs}


def test_rows_give_min_median_max_at_the_rate_and_the_ratio_of_medians() -> None:
    runs = [("a.json", _run(8.0, 24.0)), ("b.json", _run(7.0, 20.0)), ("c.json", _run(9.0, 22.0, typing=True))]
    rows = {r["key"]: r for r in cost_rows(runs, 10.0)}
    nw, ls = rows["nw-cold"], rows["ls-cold"]
    assert (nw["min"], nw["median"], nw["max"], nw["n"]) == (7.0, 8.0, 9.0, 3)
    assert ls["median"] == 22.0 and ls["vs_litserve"] is None
    assert nw["vs_litserve"] == round(8.0 / 22.0, 2)
    assert nw["slo_met"] == 3 and ls["slo_met"] == 0
    assert rows["nw-typing"]["n"] == 0 and rows["nw-typing"]["median"] is None  # 12 is more than 15% off 10
    near = {r["key"]: r for r in cost_rows(runs, 11.0)}["nw-typing"]
    assert (near["median"], near["rates"]) == (4.0, [12.0])  # the nearest point, within 15%


def test_section_leads_with_the_table_and_names_every_run() -> None:
    runs = [("a.json", _run(8.0, 24.0)), ("b.json", _run(7.0, 20.0))]
    text = "\n".join(cost_section(runs, 10.0))
    assert text.startswith("## Server CPU per answered request at about 10 req/s")
    assert "7.00 / **7.50** / 8.00" in text and "0.34x" in text
    assert text.count("at abc1234") == 2
    assert cost_section([], 10.0) == []
