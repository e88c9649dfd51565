"""What the running app holds: loaded engines, readiness, metrics (one object, on app.state)."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.config import Settings
from app.engine import InferenceEngine
from app.metrics import EngineMetrics, Metrics


@dataclass
class ServerState:
    settings: Settings
    metrics: Metrics = field(default_factory=Metrics)
    engines: dict[str, InferenceEngine] = field(default_factory=dict)
    observers: dict[str, EngineMetrics] = field(default_factory=dict)
    ready: bool = False
    draining: bool = False  # readiness only: requests are still answered
    stopped: bool = False  # the engines are stopping: requests are refused (503)
    load_error: str | None = None
    # Resolved once from the settings: the routes check every request against them.
    model_names: tuple[str, ...] = ()
    default_model: str = ""

    def __post_init__(self) -> None:
        self.model_names = tuple(self.settings.model_paths())
        self.default_model = self.settings.default_name()
