"""The one small protocol between a judge task and whatever generates text.

An engine sends one chat request and returns a Completion, or raises EngineError saying whether a retry
may help. Concurrency, retries, rate limits, caching and progress live in the dispatcher, shared by all
engines, so an engine stays a thin adapter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from ... import plugins
from ...errors import JudgeError
from ...redact import redact, redact_known
from ..ratelimit import RateLimit

if TYPE_CHECKING:
    from ...project import JudgeConfig


@dataclass(frozen=True)
class GenerationParams:
    max_tokens: int = 512
    temperature: float = 0.7
    seed: int | None = None
    top_p: float | None = None


@dataclass
class Completion:
    """One answer. Servers send odd values (token counts as strings or floats, a number as the model name):
    they are made to fit the judgment's columns here, so one odd answer cannot fail a batch. The model name is
    the server's word and is stored (judge_model, the cache, exports): a server that echoes a key there is masked."""

    text: str
    model: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    rate_limit: RateLimit | None = None  # what the provider's x-ratelimit-* headers said is left

    def __post_init__(self):
        self.model = redact_known(str(self.model))
        self.prompt_tokens = token_count(self.prompt_tokens)
        self.completion_tokens = token_count(self.completion_tokens)


def token_count(value) -> int | None:
    """A count that fits an INTEGER column, or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return None
    count = int(value)
    return count if count == value and 0 <= count < 2**31 else None


class EngineError(Exception):
    """A failed generation. `retryable` says whether the same request may succeed later; `fatal` that no
    request to this judge can (a rejected key, an unknown model): judging stops and the model fails."""

    def __init__(self, message: str, *, retryable: bool = False, retry_after: float | None = None,
                 status: int | None = None, fatal: bool | None = None, rate_limit: RateLimit | None = None):
        # Every engine failure becomes text here (row errors, the call log, build output): the one place
        # where what a server echoed back (an Authorization header, a URL's password) is masked.
        super().__init__(redact(message))
        self.retryable, self.retry_after, self.status = retryable, retry_after, status
        self.rate_limit = rate_limit
        self.fatal = status in (401, 403, 404) if fatal is None else fatal


class Engine:
    kind: ClassVar[str] = ""
    #: True when the engine works in-process and cannot run requests in parallel.
    serial: ClassVar[bool] = False
    #: The engine keeps `concurrency: auto`'s limit itself, one per replica (else the dispatcher keeps one).
    limits_replicas: ClassVar[bool] = False
    #: True when complete() uses a grammar to constrain the answer's shape.
    accepts_grammar: bool = False
    #: True when complete() takes `response_format=` (a JSON schema, see structured.py): only such engines are
    #: passed one, so an engine without the keyword keeps working.
    accepts_schema: ClassVar[bool] = False

    def __init__(self, config: "JudgeConfig"):
        self.config = config
        self.model = config.model or ""

    async def complete(self, messages: list[dict], params: GenerationParams, *, grammar: str | None = None) -> Completion:
        raise NotImplementedError

    async def check(self) -> str:
        """Say whether the engine can answer: a short description, or EngineError with what to do."""
        return self.describe()

    async def aclose(self) -> None:
        return None

    async def open_connections(self, timeout: float) -> int:
        """Open now what the first requests would (kept-alive connections); how many. Nothing by default."""
        return 0

    def describe(self) -> str:
        return f"{self.kind} {self.model}"

    def cache_identity(self) -> str:
        """Everything about the engine that changes its answers (part of the judgment cache key)."""
        return f"{self.kind}|{self.model}"


def engine_class(kind: str, judge_name: str) -> type[Engine]:
    """The engine class registered under `kind` (prefclean's own or an installed package's: see plugins),
    imported now if it was not: its client library (aiohttp, huggingface_hub, llama_cpp) loads only when used."""
    cls = plugins.load(plugins.ENGINES, kind, context=f"judge '{judge_name}': ", error=JudgeError)
    if not (isinstance(cls, type) and issubclass(cls, Engine)) or cls.kind != kind:
        raise JudgeError(f"judge '{judge_name}': the engine registered as '{kind}' "
                         f"({plugins.origin(plugins.available(plugins.ENGINES)[kind])}) is not an Engine subclass "
                         f"whose kind is '{kind}'")
    return cls


def create_engine(config: "JudgeConfig") -> Engine:
    return engine_class(config.engine, config.name)(config)
