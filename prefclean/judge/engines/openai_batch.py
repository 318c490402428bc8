"""The OpenAI Files + Batch API as a judge engine (`engine: openai-batch`): about half the price of the same
requests sent one by one, answered within the 24 h completion window.

This module is only the HTTP protocol, as OpenAI documents it (and OpenAI-compatible providers serve it):
  POST /files (multipart: purpose=batch, file=the JSONL of request lines)      -> {id, ...}
  POST /batches {input_file_id, endpoint: /v1/chat/completions, completion_window: 24h} -> a batch object
  GET  /batches/{id}    status validating | in_progress | finalizing | completed | failed | expired |
                        cancelling | cancelled, with request_counts {total, completed, failed}
  GET  /files/{id}/content   the output_file_id's and error_file_id's JSONL
A request line is {custom_id, method: POST, url: /v1/chat/completions, body}; the body is exactly what the
openai engine would send. When requests are collected, submitted and waited for is batching.py's business.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp

from ...redact import redact
from .base import Completion, EngineError, GenerationParams
from .openai import OpenAIEngine, _error_detail, _retry_after

ENDPOINT = "/v1/chat/completions"
TERMINAL = ("completed", "failed", "expired", "cancelled")


class OpenAIBatchEngine(OpenAIEngine):
    kind = "openai-batch"
    batch = True  # the judge UDF hands its requests to batching.py instead of the dispatcher

    def __init__(self, config):
        super().__init__(config)
        self.base_url = self.base_urls[0]

    # cache_identity is the openai engine's: the same model with the same request body answers the same through
    # the Batch API as one request at a time, so a judgment made by either answers for both.

    def describe(self) -> str:
        return redact(f"openai-batch {self.model} at {self.base_url}")

    def request_line(self, custom_id: str, messages: list[dict], params: GenerationParams,
                     response_format: dict | None = None) -> str:
        body = self.body(messages, params, None, response_format)
        return json.dumps({"custom_id": custom_id, "method": "POST", "url": ENDPOINT, "body": body})

    async def complete(self, messages, params: GenerationParams, *, grammar=None, response_format=None) -> Completion:
        raise EngineError("the openai-batch engine sends requests in batches, not one at a time", fatal=True)

    async def _call(self, method: str, path: str, *, json_body=None, data=None, read_json: bool = True,
                    idempotent: bool = True):
        """One API call, retried up to `max_retries` times when the provider is busy or briefly unreachable (a 429
        or 5xx, Retry-After honoured, or no answer), except that creating a batch is repeated only after a 429: a
        batch created twice would be paid twice. `data` is a callable making a fresh body per attempt."""
        attempt = 0
        while True:
            try:
                return await self._call_once(method, path, json_body=json_body, data=data() if data else None,
                                             read_json=read_json)
            except EngineError as exc:
                attempt += 1
                repeatable = idempotent or exc.status == 429  # a 429 created nothing; a 5xx or time-out may have
                if not exc.retryable or not repeatable or attempt > self.config.max_retries:
                    raise
                wait = exc.retry_after if exc.retry_after is not None else min(30.0, 0.5 * 2 ** (attempt - 1))
                await asyncio.sleep(min(max(wait, 0.0), 300.0))

    async def _call_once(self, method: str, path: str, *, json_body=None, data=None, read_json: bool = True):
        session = self._ensure_session()
        url = f"{self.base_url}{path}"
        try:
            async with session.request(method, url, json=json_body, data=data) as resp:
                raw = await resp.read()
                status = resp.status
                retry_after = _retry_after(resp.headers)
        except asyncio.TimeoutError:
            raise EngineError(f"no answer from {self.base_url} within {self.config.timeout:g}s", retryable=True) from None
        except aiohttp.ClientError as exc:
            raise EngineError(f"cannot reach {self.base_url}: {exc}", retryable=True) from None
        if status != 200:
            detail = _error_detail(raw)
            if status in (401, 403):
                env = self.config.api_key_env or "OPENAI_API_KEY"
                raise EngineError(f"{self.base_url} rejected the request ({status}): set a valid key in ${env}",
                                  status=status)
            raise EngineError(f"{method} {path} at {self.base_url} failed ({status}): {detail}", status=status,
                              retryable=status == 429 or status >= 500, fatal=status in (401, 403),
                              retry_after=retry_after)
        if not read_json:
            return raw
        try:
            return json.loads(raw)
        except ValueError:
            raise EngineError(f"{method} {path} at {self.base_url}: the answer is not JSON", retryable=True) from None

    def _headers(self) -> dict:
        headers = super()._headers()
        headers.pop("Content-Type", None)  # JSON bodies and the multipart upload set their own
        return headers

    async def upload(self, jsonl: bytes, filename: str = "prefclean-batch.jsonl") -> str:
        def form():  # a FormData is consumed by the request that sends it
            data = aiohttp.FormData()
            data.add_field("purpose", "batch")
            data.add_field("file", jsonl, filename=filename, content_type="application/jsonl")
            return data

        return (await self._call("POST", "/files", data=form))["id"]  # a file uploaded twice costs nothing

    async def create(self, input_file_id: str) -> dict:
        return await self._call("POST", "/batches", idempotent=False, json_body={
            "input_file_id": input_file_id, "endpoint": ENDPOINT, "completion_window": self.config.completion_window,
            "metadata": {"source": "prefclean"}})

    async def retrieve(self, batch_id: str) -> dict:
        return await self._call("GET", f"/batches/{batch_id}")

    async def content(self, file_id: str) -> bytes:
        return await self._call("GET", f"/files/{file_id}/content", read_json=False)

    async def check(self) -> str:
        """The Batch API answers (lists one batch): nothing is submitted, nothing is paid for."""
        await self._call("GET", "/batches?limit=1")
        return f"{self.describe()}: the Batch API answers"


def completion_of(line: dict) -> tuple[Completion | None, str | None]:
    """An output or error file line -> (the completion, or None and why not)."""
    error = line.get("error")
    response = line.get("response") or {}
    if error:
        return None, redact(f"{error.get('code') or 'error'}: {error.get('message') or ''}".strip())
    status = response.get("status_code")
    body = response.get("body") or {}
    if status != 200:
        detail = body.get("error", {}).get("message") if isinstance(body.get("error"), dict) else body
        return None, redact(f"the batch answered {status}: {str(detail)[:300]}")
    try:
        message = body["choices"][0]["message"]["content"]
        text = message if isinstance(message, str) else "".join(
            p.get("text", "") for p in message or [] if isinstance(p, dict))
        usage = body.get("usage") or {}
        return Completion(text, body.get("model") or "", usage.get("prompt_tokens"), usage.get("completion_tokens")), None
    except (KeyError, IndexError, TypeError):
        return None, "malformed chat-completions body in the batch output"
