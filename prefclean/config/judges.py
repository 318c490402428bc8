"""`judges:` in prefclean.yml: one options class per engine, chosen by `engine`.

Each engine takes exactly the keys it reads (llama.cpp has no `timeout`, Hugging Face no `api_key_env`), so a
setting that would be silently ignored is an error naming the engine. An engine added by a plugin registers
its class with `register_judge_config`.

The dispatcher reads the same attributes of every judge (`base_urls`, `concurrency`, ...); an engine that has
no such key has a fixed class attribute instead. `options` gives an engine's own keys, as set in the file.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import BeforeValidator, Field, WithJsonSchema, model_validator
from pydantic.json_schema import SkipJsonSchema

from .base import ConfigModel, config_error, did_you_mean


def _url_list(value: Any) -> Any:
    """One URL or a list of replicas, without trailing slashes."""
    if isinstance(value, str):
        value = [value]
    if isinstance(value, (list, tuple)):
        return tuple(v.rstrip("/") if isinstance(v, str) else v for v in value)
    return value


def _concurrency(value: Any) -> Any:
    """A whole number of requests in flight, or "auto" (found while judging: judge/concurrency.py)."""
    if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return value
    if isinstance(value, str) and value.strip().isdigit() and int(value) >= 1:
        return int(value)
    raise config_error(f"must be a whole number >= 1 or auto, got {value!r}")


def _url(value: Any) -> Any:
    return value.rstrip("/") if isinstance(value, str) else value


class Price(ConfigModel):
    """`price:` USD per million tokens, for `prefclean plan` and the build's cost accounting."""

    # both required: a price missing one of them would count those tokens as free without saying so
    input_per_million: float = Field(ge=0, description="USD per million prompt tokens")
    output_per_million: float = Field(ge=0, description="USD per million completion tokens")
    batch_discount: float = Field(0.0, ge=0, le=1, description="the share a batch engine takes off (0.5: half)")

    def cost(self, prompt_tokens: int, completion_tokens: int, *, batch: bool = False) -> float:
        usd = (prompt_tokens * self.input_per_million + completion_tokens * self.output_per_million) / 1e6
        return usd * (1 - self.batch_discount) if batch else usd


class Budget(ConfigModel):
    """`budget:` what one build may spend on this judge; then nothing more is sent (see judge/budget.py).
    Under `budget:` because the judge's own `max_tokens` is the longest answer of one request."""

    max_requests: int | None = Field(None, ge=0, description="requests one build may send, retries included")
    max_tokens: int | None = Field(None, ge=0, description="prompt + completion tokens one build may use")
    max_cost_usd: float | None = Field(None, ge=0, description="USD one build may spend, at `price`")

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class Escalate(ConfigModel):
    """`escalate:` this judge first; the judge named by `to` only for the pairs this one is unsure of: its two
    ratings at most `margin` apart (the uncertain bias check's notion of close), or its answer unreadable."""

    to: str = Field(description="the stronger judge (a name under `judges:`) asked about the unsure pairs")
    margin: float = Field(1.0, ge=0, description="escalate a pair whose ratings are at most this far apart")


#: true (OpenAI's json_schema response_format) or json_object (with the schema: llama-cpp-python's server)
def _structured_output(value: Any) -> Any:
    """One line naming every accepted value: a union's own errors would list only "true or false"."""
    if isinstance(value, bool) or value in ("json_schema", "json_object"):
        return value
    hint = did_you_mean(value, ("json_schema", "json_object"), quote="'") if isinstance(value, str) else ""
    raise config_error(f"must be true, false, json_schema or json_object, got {value!r}{hint}")


StructuredOutput = Annotated[Union[bool, Literal["json_schema", "json_object"]],  # noqa: UP007
                             BeforeValidator(_structured_output)]
STRUCTURED_OUTPUT = ("send the answer's JSON schema as response_format: true (type json_schema) or json_object "
                     "(llama-cpp-python's server)")


class JudgeConfig(ConfigModel):
    """What every judge has. Its name is its key under `judges:`.

    `JudgeConfig(engine="openai", ...)` builds the engine's class, so code that makes a judge (the smoke-test
    judge, tests) needs no import per engine."""

    aliases: ClassVar[dict[str, str]] = {"max_new_tokens": "max_tokens"}
    #: The keys of this engine that `options` returns (the engine reads them from there).
    engine_options: ClassVar[tuple[str, ...]] = ()
    #: Whether this engine judges through a provider's batch API, the only place `price.batch_discount` applies.
    batch_engine: ClassVar[bool] = False

    name: SkipJsonSchema[str] = Field("", exclude=True)
    engine: str
    model: str | None = Field(None, description="the model the engine serves or loads")
    max_tokens: int = Field(512, ge=1, description="the longest answer, in tokens")
    temperature: float = Field(0.7, ge=0, description="sampling temperature (0: greedy)")
    seed: int | None = Field(None, description="sampling seed, for engines that honour one")
    top_p: float | None = Field(None, gt=0, le=1, description="nucleus sampling")
    max_retries: int = Field(4, ge=0, description="retries of a failed request (errors, time-outs, 429s)")
    parse_retries: int = Field(2, ge=0, description="times the judge is asked again when its answer cannot be read")
    requests_per_minute: float | None = Field(None, gt=0, description="pace the requests (rate-limited APIs)")
    tokens_per_minute: float | None = Field(None, gt=0, description="pace prompt + max_tokens per request")
    price: Price | None = Field(None, description="USD per million tokens: plan and build report the cost")
    budget: Budget | None = Field(None, description="what one build may spend on this judge")
    tokenizer: str | None = Field(None, description="a tokenizer.json (relative to the project) for plan's counts")
    rationale: Literal["none", "short", "full"] = Field(
        "full", description="explanations asked for: none (ratings only, a few tokens), short or full")
    escalate: Escalate | None = Field(None, description="a stronger judge for the pairs this one is unsure of")

    @model_validator(mode="after")
    def _cost_needs_a_price(self):
        if self.budget is not None and self.budget.max_cost_usd is not None and self.price is None:
            raise config_error("needs the judge's `price: {input_per_million: X, output_per_million: Y}` (USD), or "
                               "no request would count against it", key="budget.max_cost_usd")
        if (self.price is not None and "batch_discount" in self.price.model_fields_set and not self.batch_engine):
            raise config_error(f"applies only to batch engines (openai-batch); the {self.engine} engine pays the full "
                               "price, so it would be ignored", key="price.batch_discount")
        return self

    def most_in_flight(self) -> int:
        """The most requests in flight per replica (an engine without the key: one)."""
        from ..judge.concurrency import AUTO_MAX

        concurrency = getattr(self, "concurrency", 1)
        return concurrency if isinstance(concurrency, int) else (getattr(self, "max_concurrency", None) or AUTO_MAX)

    def __new__(cls, *args: Any, **data: Any):
        if cls is JudgeConfig and "engine" in data:
            cls = JUDGE_CLASSES.get(data["engine"], cls)
        return super().__new__(cls)

    def __hash__(self) -> int:  # dict-valued options (extra_body) would make the default hash fail
        return hash((type(self), self.name, json.dumps(self.model_dump(mode="json"), sort_keys=True)))

    @property
    def options(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in self.engine_options if key in self.model_fields_set}


class RemoteJudgeConfig(JudgeConfig):
    """A judge behind an HTTP API: requests in flight and a time-out per request."""

    timeout: float = Field(120.0, gt=0, description="seconds to wait for one answer")
    concurrency: Annotated[int | Literal["auto"], BeforeValidator(_concurrency)] = Field(
        "auto", description="requests in flight per replica, or auto: found from the server's latency and errors")
    max_concurrency: int | None = Field(None, ge=1, description="with concurrency auto: the most per replica (64)")


class OpenAIJudge(RemoteJudgeConfig):
    """Any OpenAI-compatible chat-completions server: vLLM, TGI, llama.cpp's server, Ollama, OpenAI."""

    aliases: ClassVar[dict[str, str]] = {**JudgeConfig.aliases, "base_url": "base_urls"}
    engine_options: ClassVar[tuple[str, ...]] = ("send_grammar", "extra_body", "structured_output")

    engine: Literal["openai"]
    base_urls: Annotated[tuple[str, ...], BeforeValidator(_url_list), WithJsonSchema(
        {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]})] = Field(
        (), description="the server's URL (…/v1), or a list of replicas (default: api.openai.com)")
    api_key_env: str | None = Field(None, description="the environment variable holding the key (default OPENAI_API_KEY)")
    send_grammar: bool = Field(False, description="send the task's GBNF grammar (llama.cpp's server honours it)")
    extra_body: dict[str, Any] = Field({}, description="more fields for every request body")
    structured_output: StructuredOutput = Field(False, description=STRUCTURED_OUTPUT)

    @property
    def base_url(self) -> str | None:
        return self.base_urls[0] if self.base_urls else None


class OpenAIBatchJudge(OpenAIJudge):
    """The OpenAI Files + Batch API (or a compatible provider's): requests uploaded as a JSONL file, answered within
    the completion window at a discount. How it submits, polls and collects: prefclean/judge/batching.py."""

    batch_engine: ClassVar[bool] = True
    engine: Literal["openai-batch"]  # type: ignore[assignment]
    poll_seconds: float = Field(30.0, gt=0, description="seconds between two looks at a submitted batch")
    wait: bool = Field(True, description="wait for the batches to finish (false, or build --no-wait: submit and "
                                         "return; the next build collects)")
    max_requests_per_file: int = Field(50_000, ge=1, description="requests per batch file (OpenAI's limit: 50,000)")
    max_bytes_per_file: int = Field(200_000_000, ge=1, description="bytes per batch file (OpenAI's limit: 200 MB)")
    completion_window: str = Field("24h", description="the batch's completion window (OpenAI accepts only 24h)")
    # Not used by a batch (the provider paces its lines, an unreadable answer is resubmitted by the next build, the
    # body carries no grammar): unknown keys here, so setting one is an error instead of being ignored.
    requests_per_minute: ClassVar[None] = None
    tokens_per_minute: ClassVar[None] = None
    concurrency: ClassVar[int] = 1
    max_concurrency: ClassVar[None] = None
    parse_retries: ClassVar[int] = 0
    send_grammar: ClassVar[bool] = False


class HFInferenceJudge(RemoteJudgeConfig):
    """Hugging Face serverless inference / Inference Providers, or one Inference Endpoint or TGI server."""

    engine_options: ClassVar[tuple[str, ...]] = ("provider", "structured_output")

    engine: Literal["hf-inference"]
    base_url: Annotated[str | None, BeforeValidator(_url)] = Field(
        None, description="an Inference Endpoint or TGI URL (default: the serverless API for `model`)")
    provider: str | None = Field(None, description="an Inference Provider (default: auto)")
    structured_output: StructuredOutput = Field(False, description=STRUCTURED_OUTPUT)
    api_key_env: ClassVar[None] = None  # the token is HF_TOKEN or the saved login

    @property
    def base_urls(self) -> tuple[str, ...]:
        return (self.base_url,) if self.base_url else ()


class LlamaCppJudge(JudgeConfig):
    """A GGUF model in this process (llama-cpp-python), grammar-constrained; one request at a time."""

    engine_options: ClassVar[tuple[str, ...]] = ("filename", "n_ctx", "n_threads", "n_threads_batch",
                                                 "n_gpu_layers", "flash_attn", "grammar")

    engine: Literal["llamacpp"]
    model: str | None = Field(None, description="a .gguf path (relative to the project) or a Hub repo id")
    filename: str | None = Field(None, description="the .gguf file in the Hub repo named by `model`")
    n_ctx: int | None = Field(None, ge=1, description="context window in tokens")
    n_threads: int | None = Field(None, ge=1, description="threads for generation (default: the CPU cores)")
    n_threads_batch: int | None = Field(None, ge=1, description="threads for the prompt (default: n_threads)")
    n_gpu_layers: int | None = Field(None, ge=-1, description="layers offloaded to a GPU (-1: all)")
    flash_attn: bool = Field(True, description="llama.cpp's flash attention (faster; false for a backend without it)")
    grammar: bool = Field(True, description="constrain the answer with the task's grammar")
    base_urls: ClassVar[tuple[str, ...]] = ()
    base_url: ClassVar[None] = None
    api_key_env: ClassVar[None] = None
    concurrency: ClassVar[int] = 1  # in-process: one generation at a time
    max_concurrency: ClassVar[None] = None
    timeout: ClassVar[None] = None


JUDGE_CLASSES: dict[str, type[JudgeConfig]] = {
    "openai": OpenAIJudge, "openai-batch": OpenAIBatchJudge, "hf-inference": HFInferenceJudge, "llamacpp": LlamaCppJudge,
}


def register_judge_config(cls: type[JudgeConfig]) -> type[JudgeConfig]:
    """Make an engine's options class known to prefclean.yml (its `engine` field is a Literal of its name)."""
    (engine,) = cls.model_fields["engine"].annotation.__args__
    JUDGE_CLASSES[engine] = cls
    return cls


def judge_union(classes: dict[str, type[JudgeConfig]]):
    return Annotated[Union[tuple(classes.values())], Field(discriminator="engine")]  # noqa: UP007
