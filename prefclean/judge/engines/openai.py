"""The OpenAI-compatible chat-completions engine: vLLM, TGI, llama.cpp's server, Ollama, OpenAI itself.

A judge may list several base URLs (replicas): each request goes to the healthy replica with the fewest
requests in flight, at most `concurrency` per replica (with `auto`, each replica's own adaptive limit:
judge/concurrency.py); a replica that fails to connect or answers 5xx is taken out for a cool-down that doubles
while it keeps failing.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import TYPE_CHECKING

import orjson

from ...errors import JudgeError
from ...redact import add_secret, redact, without_userinfo
from ..concurrency import AUTO_MAX, AdaptiveLimit
from ..ratelimit import RateLimit
from .base import Completion, Engine, EngineError, GenerationParams
from .http1 import Endpoint, HTTPFailure

if TYPE_CHECKING:
    import aiohttp


def _content_text(content) -> str:
    """A message's content: a string, or (some servers) a list of parts whose text parts are joined."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part["text"] for part in content if isinstance(part, dict) and part.get("type") == "text")
    raise TypeError(f"content of type {type(content).__name__}")


class Replica:
    def __init__(self, url: str, limit: "int | AdaptiveLimit", headers: dict[str, str]):
        self.url = url.rstrip("/")
        self.endpoint = Endpoint(f"{self.url}/chat/completions", headers)  # its kept-alive connections
        self.adaptive = limit if isinstance(limit, AdaptiveLimit) else None
        self.fixed = limit if isinstance(limit, int) else None
        self.in_flight = 0
        self.down_until = 0.0
        self.failures = 0

    @property
    def limit(self) -> int:
        return self.adaptive.limit if self.adaptive is not None else self.fixed

    def healthy(self, now: float) -> bool:
        return self.down_until <= now

    def mark_failed(self) -> None:
        self.failures += 1
        self.down_until = time.monotonic() + min(60.0, 1.0 * 2 ** (self.failures - 1))

    def mark_ok(self) -> None:
        self.failures = 0
        self.down_until = 0.0


def _json(value) -> bytes:
    """A request body's JSON (UTF-8). orjson: ~0.4 µs instead of ~8 µs for a judge prompt's messages; what it
    refuses (a lone surrogate in the data, an integer past 64 bits) goes as the json module writes it."""
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(value).encode()


def _retry_after(headers) -> float | None:
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _error_detail(body: bytes) -> str:
    try:
        data = json.loads(body)
        err = data.get("error", data)
        if isinstance(err, dict):
            return str(err.get("message") or err)[:300]
        return str(err)[:300]
    except (ValueError, AttributeError):
        return body[:300].decode("utf-8", "replace").strip()


class OpenAIEngine(Engine):
    kind = "openai"
    accepts_schema = True
    limits_replicas = True

    def __init__(self, config):
        super().__init__(config)
        if not config.base_urls:
            self.base_urls = ("https://api.openai.com/v1",)
        else:
            self.base_urls = config.base_urls
        self.model = config.model or "default"
        self._session: "aiohttp.ClientSession | None" = None  # for the Batch API's calls (openai_batch.py)
        self._waiters: list[asyncio.Future] = []  # requests waiting for a replica with room (_acquire)
        env = config.api_key_env or "OPENAI_API_KEY"
        self._api_key = os.environ.get(env)  # never logged, never stored
        add_secret(self._api_key)  # and masked wherever a server echoes it back
        if self._api_key and any(without_userinfo(url) != url for url in self.base_urls):
            # a request has one Authorization header (the userinfo is sent as Basic auth): say so before any request
            raise JudgeError(f"judge '{config.name}': its base_url carries user:password@ and ${env} is set; a "
                             f"request has one Authorization header: remove the userinfo, or unset ${env} "
                             f"(or point api_key_env at an unset variable)")
        self.replicas = [Replica(url, self._limit(config), self._headers()) for url in self.base_urls]
        self.send_grammar = self.accepts_grammar = bool(config.options.get("send_grammar", False))
        self.extra_body = dict(config.options.get("extra_body") or {})
        self._tails: dict[tuple, bytes] = {}  # a request body's part after the messages, per parameters

    @staticmethod
    def _limit(config) -> "int | AdaptiveLimit":
        if config.concurrency == "auto":
            return AdaptiveLimit(maximum=config.max_concurrency or AUTO_MAX)
        return config.concurrency

    def cache_identity(self) -> str:
        # The replicas serve the same model, so their URLs are not part of the identity. What else is sent
        # with every request changes answers too (added only when set, so older cache keys still match).
        identity = f"openai|{self.model}"
        if not self.config.model:  # no model named: whatever the server serves, so the server says which
            identity += "|" + ",".join(without_userinfo(url) for url in self.base_urls)
        if self.extra_body:
            identity += "|extra_body=" + json.dumps(self.extra_body, sort_keys=True, default=str)
        if self.send_grammar:
            identity += "|grammar"
        return identity

    def describe(self) -> str:
        return redact(f"openai {self.model} at {', '.join(self.base_urls)}")

    def _headers(self) -> dict:
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def _ensure_session(self) -> "aiohttp.ClientSession":
        """An aiohttp session, for the Batch API's uploads and polling (chat requests use http1.Endpoint)."""
        import aiohttp

        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, enable_cleanup_closed=True)
            self._session = aiohttp.ClientSession(connector=connector, headers=self._headers(),
                                                  timeout=aiohttp.ClientTimeout(total=self.config.timeout))
        return self._session

    def _mark_failed(self, replica: Replica) -> None:
        # A cool-down routes around a bad replica; with only one it would just stall every retry (up to 60 s)
        # on top of the dispatcher's backoff.
        if len(self.replicas) > 1:
            replica.mark_failed()

    async def _acquire(self) -> Replica:
        """The healthy replica with the fewest requests in flight and room for one more (waiting until there
        is one). All of it runs on the judge's loop thread, between awaits: no lock is needed."""
        while True:
            now = time.monotonic()
            best = None
            for r in self.replicas:
                if r.down_until <= now and r.in_flight < r.limit and (best is None or r.in_flight < best.in_flight):
                    best = r
            if best is not None:
                best.in_flight += 1
                return best
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                if not any(r.healthy(now) for r in self.replicas):
                    # All down: wait for the first to come back rather than fail the row.
                    wake = min(r.down_until for r in self.replicas) - now
                    try:
                        await asyncio.wait_for(waiter, timeout=max(wake, 0.01))
                    except asyncio.TimeoutError:
                        pass
                else:
                    await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    def _release(self, replica: Replica, started: float, in_flight: int, status: int | None) -> None:
        """Give the place back and wake whoever waits for one; with `auto`, tell the replica's limit how the
        request went (a 429, a 5xx, a time-out or a refused connection say the server has too much to do)."""
        replica.in_flight -= 1
        if replica.adaptive is not None:
            replica.adaptive.sample(time.perf_counter() - started, in_flight,
                                    dropped=status is None or status == 429 or status >= 500)
        if self._waiters:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def _payload(self, messages, params: GenerationParams, grammar=None, response_format=None) -> bytes:
        """The request body: the messages encoded per request, the rest once per set of parameters."""
        if response_format:
            return _json(self.body(messages, params, grammar, response_format))
        tail = self._tails.get((params, grammar))
        if tail is None:
            rest = self.body([], params, grammar)
            del rest["messages"]
            tail = self._tails[params, grammar] = b"," + _json(rest)[1:]
        return b'{"messages":' + _json(messages) + tail

    def body(self, messages, params: GenerationParams, grammar=None, response_format=None) -> dict:
        """One chat-completions request body."""
        body = {"model": self.model, "messages": messages, "max_tokens": params.max_tokens,
                "temperature": params.temperature, **self.extra_body}
        if params.seed is not None:
            body["seed"] = params.seed
        if params.top_p is not None:
            body["top_p"] = params.top_p
        if grammar and self.send_grammar:
            body["grammar"] = grammar
        if response_format:
            body["response_format"] = response_format
        return body

    async def complete(self, messages, params: GenerationParams, *, grammar=None, response_format=None) -> Completion:
        payload = self._payload(messages, params, grammar, response_format)
        replica = await self._acquire()
        started, in_flight, status = time.perf_counter(), replica.in_flight, None
        try:
            status, raw, headers = await self._post(replica, payload)
        finally:
            self._release(replica, started, in_flight, status)
        try:
            completion = self._completion(replica, status, raw, _retry_after(headers))
        except EngineError as exc:
            exc.rate_limit = RateLimit.from_headers(headers)
            raise
        completion.rate_limit = RateLimit.from_headers(headers)
        return completion

    async def _post(self, replica: Replica, payload: bytes, timeout: float | None = None) -> tuple[int, bytes, dict]:
        seconds = timeout or self.config.timeout
        try:
            response = await replica.endpoint.post(payload, seconds)
        except asyncio.TimeoutError:
            self._mark_failed(replica)
            raise EngineError(f"no answer from {replica.url} within {seconds:g}s", retryable=True) from None
        except HTTPFailure as exc:
            self._mark_failed(replica)
            raise EngineError(f"cannot reach {replica.url}: {exc}", retryable=True) from None
        return response.status, response.body, response.headers

    def _completion(self, replica: Replica, status: int, raw: bytes, retry_after: float | None) -> Completion:
        """The answer of a 200, or the EngineError a status means."""
        if status == 200:
            replica.mark_ok()
            try:
                data = orjson.loads(raw)
                text = _content_text(data["choices"][0]["message"]["content"])
                usage = data.get("usage") or {}
                return Completion(text, data.get("model") or self.model, usage.get("prompt_tokens"),
                                  usage.get("completion_tokens"))
            except (ValueError, KeyError, IndexError, TypeError, AttributeError):
                raise EngineError(f"malformed chat-completions response from {replica.url}", retryable=True) from None
        detail = _error_detail(raw)
        if status == 429:
            raise EngineError(f"rate limited by {replica.url} (429): {detail}", retryable=True,
                              retry_after=retry_after, status=429)
        if status >= 500:
            self._mark_failed(replica)
            raise EngineError(f"server error {status} from {replica.url}: {detail}", retryable=True,
                              retry_after=retry_after, status=status)
        if status in (401, 403):
            env = self.config.api_key_env or "OPENAI_API_KEY"
            raise EngineError(f"{replica.url} rejected the request ({status}): set a valid key in ${env}",
                              status=status)
        if status == 404:
            raise EngineError(f"{replica.url} has no model '{self.model}' or no chat-completions endpoint (404): {detail}",
                              status=status)
        raise EngineError(f"{replica.url} refused the request ({status}): {detail}", status=status)

    async def check(self) -> str:
        """A one-token completion from every replica: a server that lists its models but refuses every
        request (a 400 to each) is not a judge that works."""
        payload = self._payload([{"role": "user", "content": "Say OK."}], GenerationParams(max_tokens=1, temperature=0.0))
        results = []
        for replica in self.replicas:
            status, raw, headers = await self._post(replica, payload, min(self.config.timeout, 60.0))
            try:
                self._completion(replica, status, raw, _retry_after(headers))
            except EngineError as exc:
                if exc.status != 429:  # rate limited: it answers, it is only busy
                    raise
            results.append(f"{replica.url} answers")
        return redact("; ".join(results))

    async def open_connections(self, timeout: float) -> int:
        """As many kept-alive connections to each replica as it may have requests in flight now."""
        counts = await asyncio.gather(*(r.endpoint.open_idle(r.limit, timeout) for r in self.replicas))
        return sum(counts)

    async def aclose(self) -> None:
        for replica in self.replicas:
            replica.endpoint.close()
        if self._session is not None and not self._session.closed:
            await self._session.close()
