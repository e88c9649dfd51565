"""The one typed settings object; every knob can be set by a ``NEXTWORD_*`` variable."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

import model

ARTIFACTS = Path(model.__file__).resolve().parent / "artifacts"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NEXTWORD_", env_file=".env", extra="ignore")

    # Models
    gru_path: Path | None = Field(ARTIFACTS / "gru.pt", description="GRU artifact ('' disables)")
    lstm_path: Path | None = Field(ARTIFACTS / "lstm.pt", description="LSTM artifact ('' disables)")
    default_model: Literal["gru", "lstm"] = "gru"

    # Engine
    batching: bool = Field(True, description="false: one request per model call (for comparison)")
    max_batch: int = Field(
        16, ge=1,
        description="most requests whose work shares one iteration; bounds an iteration's duration, and so a"
        " request's own latency (one iteration per piece it decodes), under overload",
    )
    max_batch_rows: int = Field(1024, ge=1, description="most rows (beam hypotheses) in one call")
    max_wait_ms: float = Field(
        1.0, ge=0, description="longest the oldest queued request waits for a batch (skipped when arrivals are sparse)"
    )
    queue_limit: int = Field(256, ge=1, description="requests waiting or running; more are rejected (503)")
    max_queue_wait_ms: float = Field(250.0, gt=0, description="reject new work while the oldest queued waited longer")
    deadline_ms: float = Field(1000.0, gt=0, description="per request, queueing and compute together")
    cache_bytes: int = Field(64 * 1024 * 1024, ge=0, description="prefix-state cache size per backend; 0 off")
    threads: int = Field(2, ge=1, description="torch intra-op threads")
    precision: Literal["fp32", "fp16"] = Field(
        "fp16", description="fp16: weights packed at load for fast small-batch CPU steps (model.packing)"
    )
    prefill_chunk: int = Field(256, ge=1, description="context tokens read per iteration per request")

    # Decoding
    beam: int = Field(6, ge=1, le=64, description="next-word beam width (6 ranks as well as 8 here)")
    phrase_beam: int = Field(4, ge=1, le=32)
    completion_threshold: float = Field(0.25, ge=0.0, le=1.0, description="min confidence of a phrase")

    # HTTP
    max_text_chars: int = Field(4000, ge=1)
    cors_origins: list[str] = Field(default_factory=list)
    stats_window_s: float = Field(60.0, gt=0)
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    log_level: str = "info"

    def model_paths(self) -> dict[str, Path]:
        """Enabled backends and their artifact files."""
        paths = {"gru": self.gru_path, "lstm": self.lstm_path}
        return {name: p for name, p in paths.items() if p is not None and str(p) not in ("", ".")}
