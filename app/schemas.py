"""Request and response bodies of the public API (the contract is fixed: add, don't rename)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictStr, field_validator

MODEL_NAME_MAX = 64
#: A subject is a line: longer than this is not one (a 422, before any work).
SUBJECT_MAX_CHARS = 1000


def _json_integer(value: Any) -> Any:
    """An integer as JSON Schema has it: 3 and 3.0, not "3" (a client sending strings has a bug to see) nor true."""
    if isinstance(value, str | bool):
        raise ValueError("must be a JSON number, not a string or boolean")
    return value


JsonInt = Annotated[int, BeforeValidator(_json_integer)]


class CompleteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: StrictStr = Field(..., description="Everything typed so far; may end inside a word")
    model: StrictStr | None = Field(
        None, max_length=MODEL_NAME_MAX, description="a served model's name (GET /v1/models); default from settings"
    )
    k: JsonInt = Field(3, ge=1, le=10, description="At most how many next-word suggestions (words of the model's"
                       " lexicon: fewer when it knows fewer that fit)")
    max_words: JsonInt = Field(0, ge=0, le=8, description="Phrase completion length; 0 = next word only")
    subject: StrictStr = Field(
        "", max_length=SUBJECT_MAX_CHARS, description="The e-mail's subject, if any: a model that learnt to read"
        " one (its card's reads_subject) reads it before the text; others ignore it (see subject_read)",
    )

    @field_validator("text", "model", "subject")
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
    text: str = Field(
        ..., description="Exactly what to insert after the caret for this word: the rest of it past the typed"
        " fragment, or the word with a leading space where the text ends without one and the word takes one"
        ' ("Mr." -> " Lay", but "3:" -> "00")',
    )


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
    fragment_prob: float = Field(
        1.0,
        description="Probability that the next word starts with the typed fragment, before it was typed (1 with"
        " no fragment). Suggestion probabilities and typed_word_prob are conditioned on it: P(word | what is"
        " typed); multiply by it for P(word | the context and the space typed before the word).",
    )
    subject_read: bool = Field(
        False, description="The model read the request's subject before the text (false: none was sent, or this"
        " model does not read subjects)",
    )


class ErrorResponse(BaseModel):
    detail: str


class ValidationIssue(BaseModel):
    type: str
    loc: list[str | int] = Field(..., description="where: ['body', field] or ['header', name]")
    msg: str


class ValidationErrorResponse(BaseModel):
    """A 422: what was wrong with the request, one entry per problem (the input is not echoed)."""

    detail: list[ValidationIssue]


class ModelInfo(BaseModel):
    name: str
    card: dict
    precision: str = "fp32"  # weights as served (the artifact file is fp32)


class ModelsResponse(BaseModel):
    models: list[ModelInfo]
    default: str
