"""Request and response bodies of the public API (the contract is fixed: add, don't rename)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

MODEL_NAME_MAX = 64


class CompleteRequest(BaseModel):
    # strict: "k": "3" is a 422, not silently coerced (a client sending strings has a bug to see)
    model_config = ConfigDict(extra="forbid", strict=True)

    text: str = Field(..., description="Everything typed so far; may end inside a word")
    model: str | None = Field(
        None, max_length=MODEL_NAME_MAX, description="a served model's name (GET /v1/models); default from settings"
    )
    k: int = Field(3, ge=1, le=10, description="How many next-word suggestions")
    max_words: int = Field(0, ge=0, le=8, description="Phrase completion length; 0 = next word only")


    @field_validator("text", "model")
    @classmethod
    def _valid_unicode(cls, value: str | None) -> str | None:
        """Lone surrogates are legal in JSON strings but are not text: refuse them here (422)."""
        if value is not None:
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("text is not valid Unicode (a lone surrogate)") from None
        return value


class WordSuggestion(BaseModel):
    word: str
    prob: float


class Completion(BaseModel):
    text: str = Field(..., description="Text to insert after the caret")
    confidence: float


class TimingMs(BaseModel):
    queue: float
    compute: float
    total: float


class CompleteResponse(BaseModel):
    model: str
    fragment: str = Field(..., description="The partial word the suggestions complete")
    suggestions: list[WordSuggestion]
    completion: Completion | None
    timing_ms: TimingMs
    cache_hit: bool = Field(False, description="The context's state came from the prefix cache")
    typed_word_prob: float = Field(
        0.0,
        description="Probability that the typed fragment is already the whole word. Suggestions only"
        " complete the fragment (never repeat it); show one as ghost text only when it beats this.",
    )


class ErrorResponse(BaseModel):
    detail: str


class ModelInfo(BaseModel):
    name: str
    card: dict
    precision: str = "fp32"  # weights as served (the artifact file is fp32)


class ModelsResponse(BaseModel):
    models: list[ModelInfo]
    default: str
