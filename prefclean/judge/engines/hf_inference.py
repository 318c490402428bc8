"""The Hugging Face inference engine, on huggingface_hub's AsyncInferenceClient (chat completion).

`model` is a Hub model id (serverless API or an inference provider: `provider:` option) or the URL of a
dedicated Inference Endpoint / any TGI-style server (`base_url`). The token comes from HF_TOKEN or the
saved login; it is never logged. Concurrency, retries, 429 back-off and caching are the dispatcher's,
shared with every engine.
"""

from __future__ import annotations

import asyncio

from ...errors import JudgeError
from ...redact import add_secret, redact, without_userinfo
from .base import Completion, Engine, EngineError, GenerationParams

DEFAULT_MODEL = "meta-llama/Meta-Llama-3.1-70B-Instruct"


def _status(exc: Exception) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _retry_after(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    try:
        return float(headers.get("Retry-After")) if headers.get("Retry-After") else None
    except ValueError:
        return None


class HFInferenceEngine(Engine):
    kind = "hf-inference"
    accepts_schema = True  # InferenceClient's response_format: OpenAI's json_schema shape, which TGI serves

    def __init__(self, config):
        super().__init__(config)
        self.base_url = config.base_url
        self.model = config.model or (None if self.base_url else DEFAULT_MODEL) or "tgi"
        self.provider = config.options.get("provider")
        self._client = None
        if not self.base_url and not self._token():
            raise JudgeError(f"judge '{config.name}': the Hugging Face inference API needs a token for {self.model}: "
                             "set HF_TOKEN or run `hf auth login` (or point `base_url` at your own server)")

    def _token(self) -> str | None:
        from huggingface_hub import get_token

        token = get_token()  # HF_TOKEN, else the saved login
        add_secret(token)  # masked wherever a server echoes it back
        return token

    def _ensure_client(self):
        if self._client is None:
            from huggingface_hub import AsyncInferenceClient

            kwargs = {"token": self._token(), "timeout": self.config.timeout}
            if self.base_url:
                kwargs["base_url"] = self.base_url
            else:
                kwargs["model"] = self.model
                if self.provider:
                    kwargs["provider"] = self.provider
            self._client = AsyncInferenceClient(**kwargs)
        return self._client

    def describe(self) -> str:
        where = self.base_url or f"Hugging Face inference ({self.provider or 'auto'})"
        return redact(f"hf-inference {self.model} at {where}")

    def cache_identity(self) -> str:
        # A provider may serve another build of the model (added only when set: older cache keys still match).
        identity = f"hf-inference|{self.model}" + (f"|provider={self.provider}" if self.provider else "")
        if self.base_url and not self.config.model:  # an endpoint named only by its URL: the URL says which model
            identity += "|" + without_userinfo(self.base_url)
        return identity

    async def complete(self, messages, params: GenerationParams, *, grammar=None, response_format=None) -> Completion:
        client = self._ensure_client()
        try:
            out = await client.chat_completion(
                messages, model=self.model if self.base_url else None, max_tokens=params.max_tokens,
                temperature=params.temperature, seed=params.seed, top_p=params.top_p,
                **({"response_format": response_format} if response_format else {}))
        except asyncio.TimeoutError:
            raise EngineError(f"no answer from {self.describe()} within {self.config.timeout:g}s", retryable=True) from None
        except Exception as exc:  # huggingface_hub wraps HTTP errors in several classes; classify by status
            raise self._classify(exc) from None
        text = out.choices[0].message.content or "" if out.choices else ""
        usage = getattr(out, "usage", None)
        return Completion(text, getattr(out, "model", None) or self.model,
                          getattr(usage, "prompt_tokens", None), getattr(usage, "completion_tokens", None))

    def _classify(self, exc: Exception) -> EngineError:
        status = _status(exc)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        if status == 429:
            return EngineError(f"rate limited by Hugging Face inference (429): {first}", retryable=True,
                               retry_after=_retry_after(exc), status=429)
        if status in (401, 403):
            return EngineError(f"Hugging Face refused access to {self.model} ({status}): set HF_TOKEN or run "
                               "`hf auth login`, and accept the model's licence on its Hub page if it is gated",
                               status=status)
        if status == 404:
            return EngineError(f"unknown model or endpoint {self.model} (404): {first}", status=404)
        if status is not None and status >= 500:
            return EngineError(f"Hugging Face inference error {status}: {first}", retryable=True, status=status)
        if status is None:  # connection problems
            return EngineError(f"cannot reach {self.describe()}: {first}", retryable=True)
        return EngineError(f"Hugging Face inference refused the request ({status}): {first}", status=status)

    async def check(self) -> str:
        try:
            await self.complete([{"role": "user", "content": "Say OK."}], GenerationParams(max_tokens=1, temperature=0.0))
        except EngineError:
            raise
        return f"{self.describe()} answers"

    async def aclose(self) -> None:
        if self._client is not None and hasattr(self._client, "close"):
            try:
                await self._client.close()
            except Exception:
                pass
