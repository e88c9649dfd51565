"""bench.server_metrics: a run's share of the server's counters, from /metrics before and after."""

from __future__ import annotations

import httpx

from bench.server_metrics import metrics_delta, scrape_metrics

EXPOSITION = """# HELP nextword_batch_requests Requests per model call
# TYPE nextword_batch_requests histogram
nextword_batch_requests_count{backend="gru"} 10.0
nextword_batch_requests_count{backend="lstm"} 2.0
nextword_batch_requests_sum{backend="gru"} 30.0
nextword_prefix_cache_hits_total{backend="gru"} 3.0
not_a_number{x="1"} NaN-ish
"""


def _client(text: str, status: int = 200) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(status, text=text)))


def test_scrape_sums_labels_and_skips_what_it_cannot_read() -> None:
    with _client(EXPOSITION) as client:
        out = scrape_metrics(client, "http://server")
    assert out == {"nextword_batch_requests_count": 12.0, "nextword_batch_requests_sum": 30.0,
                   "nextword_prefix_cache_hits_total": 3.0}


def test_scrape_of_an_unreachable_server_is_empty() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with httpx.Client(transport=httpx.MockTransport(refuse)) as client:
        assert scrape_metrics(client, "http://server") == {}


def test_delta_names_batches_and_cache_hit_rate() -> None:
    before = {"nextword_batch_requests_count": 10.0, "nextword_batch_requests_sum": 20.0,
              "nextword_batch_rows_count": 10.0, "nextword_batch_rows_sum": 40.0,
              "nextword_prefix_cache_hits_total": 5.0, "nextword_prefix_cache_misses_total": 5.0}
    after = {"nextword_batch_requests_count": 14.0, "nextword_batch_requests_sum": 30.0,
             "nextword_batch_rows_count": 14.0, "nextword_batch_rows_sum": 60.0,
             "nextword_prefix_cache_hits_total": 8.0, "nextword_prefix_cache_misses_total": 6.0}
    assert metrics_delta(before, after) == {"model_calls": 4, "mean_batch_requests": 2.5, "mean_batch_rows": 5.0,
                                            "cache_hit_rate": 0.75}
    assert metrics_delta(after, after) == {}

