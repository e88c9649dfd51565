"""The one typed settings object; every knob can be set by a ``NEXTWORD_*`` variable."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

import model
from model.suggest import DecodeOptions

ARTIFACTS = Path(model.__file__).resolve().parent / "artifacts"
#: The model of a request that names none, when served: nextword writes e-mail first.
PREFERRED_DEFAULT = "gru-email"
MODEL_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NEXTWORD_", env_file=".env", extra="ignore")

    # Models
    models: str = Field(
        str(ARTIFACTS),
        description="backends to serve: comma-separated name=path pairs ('gru=a.pt,gru-email=b.pt'), or a"
        " folder whose *.pt artifacts are served under their file names ('gru-email.pt' as 'gru-email')",
    )
    default_model: str | None = Field(
        None, description=f"the model of a request that names none; unset: {PREFERRED_DEFAULT!r} if served, else the"
        " first"
    )

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
    gc_interval_ms: float = Field(
        50.0, ge=0, description="collect Python's young GC generation this often (app/young_gc.py); 0: CPython's pace"
    )
    queue_limit: int = Field(256, ge=1, description="requests waiting or running; more are rejected (503)")
    max_queue_wait_ms: float = Field(250.0, gt=0, description="reject new work while the oldest queued waited longer")
    deadline_ms: float = Field(1000.0, gt=0, description="per request, queueing and compute together")
    cache_bytes: int = Field(
        128 * 1024 * 1024, ge=0,
        description="prefix-state caches of all backends together, split evenly between them; 0 off",
    )
    threads: int = Field(2, ge=1, description="torch intra-op threads")
    precision: Literal["fp32", "fp16"] = Field(
        "fp16", description="fp16: the artifact's own packed fp16 serving form (pack_fp16), fast small-batch CPU steps"
    )
    context_pieces: int = Field(
        DecodeOptions.context_pieces, ge=0,
        description="read at most the last this many pieces of the context, cut at a word (0: all of it)",
    )
    prefill_chunk: int = Field(
        DecodeOptions.prefill_chunk, ge=1, description="context tokens read per iteration per request"
    )

    # Decoding: the defaults are model.suggest.DecodeOptions', shared with the evaluators.
    beam: int = Field(DecodeOptions.beam, ge=1, le=64, description="next-word beam width")
    phrase_beam: int = Field(DecodeOptions.phrase_beam, ge=1, le=32)
    completion_threshold: float = Field(
        DecodeOptions.completion_threshold, ge=0.0, le=1.0,
        description="show a phrase when P(the writer types exactly it) reaches this (calibrated per model; 0.4 is where"
        " the GRU e-mail model's ExactMatch reaches 55% on the dev split, docs/models.md)",
    )
    known_words: bool = Field(
        DecodeOptions.known_words,
        description="propose only words of the model's lexicon (its training text's words, embedded in the artifact);"
        " off: any string the pieces spell",
    )

    # HTTP
    max_text_chars: int = Field(
        50_000, ge=1, description="longer texts are refused (413); of a text, only the end the context window"
        " reads is normalised and tokenised (model.suggest.text_tail)",
    )
    max_body_bytes: int = Field(
        64 * 1024, ge=1024, description="request bodies over this are refused (413) before they are parsed"
    )
    read_timeout_s: float = Field(
        10.0, gt=0, description="a request's head must arrive within this many seconds of its connection opening or"
        " the previous answer (else the connection is closed), and its body within as many of its head (else 408)",
    )
    cors_origins: list[str] = Field(default_factory=list)
    api_keys: list[str] = Field(
        default_factory=list, description="when set, /v1/complete needs 'Authorization: Bearer <one of them>' (401)"
    )
    metrics_port: int | None = Field(
        None, ge=1, le=65535, description="serve /metrics on this port only (for operators), not on the API port"
    )
    stats_window_s: float = Field(60.0, gt=0)
    otel: bool = Field(
        False, description="FastAPI's native OpenTelemetry (traces, metrics, logs to the globally configured providers)"
    )
    # The ASGI server that runs the app (python -m app): uvicorn by default, with its HTTP
    # parser and event loop selectable; granian as an alternative runner (docs/http_path.md).
    runner: Literal["uvicorn", "granian"] = "uvicorn"
    http: Literal["auto", "httptools", "h11"] = Field("auto", description="uvicorn's HTTP parser")
    loop: Literal["auto", "uvloop", "asyncio"] = Field("auto", description="the event loop (uvicorn and granian)")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    log_level: str = "info"
    drain_grace_s: float = Field(
        5.0, ge=0, description="after SIGTERM, keep answering this long with readiness 503 (a balancer stops sending)"
    )
    graceful_timeout_s: float = Field(
        10.0, ge=1, description="then wait at most this long for in-flight requests before exiting"
    )

    @model_validator(mode="after")
    def _check_models(self) -> Settings:
        paths = self.model_paths()
        if self.default_model is not None and self.default_model not in paths:
            raise ValueError(f"default_model {self.default_model!r} is not among the models {sorted(paths)}")
        return self

    def model_paths(self) -> dict[str, Path]:
        """Served backends, name -> artifact file, in the order given (a folder: by name)."""
        return parse_models(self.models)

    def default_name(self) -> str:
        """The model of a request that names none."""
        paths = self.model_paths()
        if self.default_model is not None:
            return self.default_model
        return PREFERRED_DEFAULT if PREFERRED_DEFAULT in paths else next(iter(paths), PREFERRED_DEFAULT)


def parse_models(spec: str) -> dict[str, Path]:
    """``name=path,...`` pairs, or a folder of ``*.pt`` files (named by stem); '' serves none."""
    spec = spec.strip()
    if not spec:
        return {}
    if "=" not in spec:
        folder = Path(spec)
        if folder.is_dir():
            return {p.stem: p for p in sorted(folder.glob("*.pt"))}
        return {folder.stem: folder}
    paths: dict[str, Path] = {}
    for pair in spec.split(","):
        name, eq, path = pair.strip().partition("=")
        name = name.strip()
        if not eq or not path.strip():
            raise ValueError(f"models: {pair.strip()!r} is not name=path")
        if not MODEL_NAME_RE.fullmatch(name):
            raise ValueError(f"models: {name!r} is not a model name (letters, digits, '.', '_', '-'; 64 at most)")
        if name in paths:
            raise ValueError(f"models: {name!r} is given twice")
        paths[name] = Path(path.strip())
    return paths
