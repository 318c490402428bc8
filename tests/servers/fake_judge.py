"""A fake LLM judge: a real OpenAI-compatible chat server on 127.0.0.1 whose answers the tests control.

Why: tests and benchmarks must exercise the real HTTP path (aiohttp client, retries, 429s, time-outs) without a
model. The server reads the prompt prefclean rendered and answers in the judge's format with ratings it derives
from markers planted in the data, so a test decides every rating by writing the rows.

Ratings, per text (first rule that applies):
  1. a marker in the text: `[[rate=K]]` (any judge) or `[[rate:MODEL=K]]` (only the judge whose model is MODEL);
  2. `position_ratings` from /control: a list giving the rating by position (simulates a position-biased judge);
  3. `default_rating` (3).
A text that also carries `[[biased]]` gets `first_position_bonus` (from /control) added when it is shown first
(clamped to 1-5): a judge that favours whatever comes first, as much as that, on the pairs so marked.
Prometheus prompts get "Feedback: ... [RESULT] K" (absolute) or "[RESULT] A|B" (relative, the higher-rated wins).

Faults, set with POST /control (JSON); counters reset with POST /reset; GET /stats returns what happened:
  latency_ms, fail_first_n + fail_status, fail_every (every k-th request fails), rate_limit_first_n + retry_after,
  garbage_first_n (unparseable answer), odd_shape_first_n (content as a list of parts, token counts as strings
  and floats, a number as the model name), hang_first_n + hang_ms, fail_if_contains / garbage_if_contains /
  hang_if_contains (substring of the prompt that always fails / gets an unparseable answer / hangs for hang_ms),
  echo_authorization (a failure's body, and every answer and its model name, repeat the request's Authorization header,
  as a careless server or proxy does), record_prompts (keep every prompt in
  /stats "prompts", to check what was sent). A request with `response_format: {"type": "json_schema", ...}`
  (structured output) is answered with a JSON object of the schema's properties (ratings/rationales, or
  feedback and score/result); /stats "response_formats" lists the distinct ones sent. max_concurrency (K > 0): at most K requests are served at once
  and the rest wait their turn, as one replica of a real model server with limited capacity (K / latency req/s).
  reject_above (K > 0): a request that arrives with more than K in flight gets a 429 at once, without
  Retry-After (TGI's max_concurrent_requests, a full vLLM queue behind a proxy). /stats "authorization" lists the distinct Authorization headers seen;
  "held_seconds" sums how long the handler held each request (the latency the server really served).
  ratelimit_requests (K > 0) with ratelimit_window_ms: a provider's request limit, as OpenAI sends it: K requests per
  window (from the window's first request), every answer carrying x-ratelimit-remaining-requests and
  x-ratelimit-reset-requests; a request over the limit gets a 429 with those headers and no Retry-After.
  ratelimit_tokens (T > 0): the same for prompt + max_tokens per request (x-ratelimit-*-tokens).

Run: python tests/servers/fake_judge.py [--port 0] [--latency-ms 0]  -> prints "LISTENING <base_url>".
In Python: `with FakeJudge() as judge: judge.url, judge.control(...), judge.stats()`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

try:  # run as a script or imported from the tests
    from .process import ServerProcess
except ImportError:
    from process import ServerProcess

TEXT_BLOCK = re.compile(r"<text (\d+)>\n(.*?)\n</text \1>", re.S)
PROMETHEUS_RESPONSE = re.compile(r"<response((?: [AB])?)>\n(.*?)\n</response\1>", re.S)  # group 1 always takes part
MARKER = re.compile(r"\[\[rate(?::([\w.\-/]+))?=(\d)\]\]")
DEFAULTS = {
    "latency_ms": 0.0, "default_rating": 3, "position_ratings": None, "first_position_bonus": 0,
    "fail_first_n": 0, "fail_status": 500, "fail_every": 0,
    "rate_limit_first_n": 0, "retry_after": 0.2,
    "garbage_first_n": 0, "odd_shape_first_n": 0, "hang_first_n": 0, "hang_ms": 30_000,
    "fail_if_contains": None, "garbage_if_contains": None, "hang_if_contains": None, "echo_authorization": False,
    "record_prompts": False,
    "max_concurrency": 0, "reject_above": 0,
    "ratelimit_requests": 0, "ratelimit_tokens": 0, "ratelimit_window_ms": 1000,
    "omit_usage": False,  # answer without `usage`, as some self-hosted servers do: the client counts the tokens
}


def rating_for(text: str, model: str, position: int, settings: dict) -> int:
    rating = _rating(text, model, position, settings)
    if position == 0 and settings["first_position_bonus"] and "[[biased]]" in text:
        rating = min(5, max(1, rating + int(settings["first_position_bonus"])))
    return rating


def _rating(text: str, model: str, position: int, settings: dict) -> int:
    generic = None
    for target, value in MARKER.findall(text):
        if target == model:
            return int(value)
        if not target and generic is None:
            generic = int(value)
    if generic is not None:
        return generic
    positions = settings["position_ratings"]
    if positions:
        return int(positions[min(position, len(positions) - 1)])
    return int(settings["default_rating"])


def answer_for(prompt: str, model: str, settings: dict, response_format: dict | None = None) -> str:
    """The judge's answer, in the format of whichever task rendered the prompt (JSON when a schema was sent)."""
    texts = TEXT_BLOCK.findall(prompt)
    response_format = response_format or {}
    schema = (response_format.get("json_schema") or {}).get("schema") or response_format.get("schema")
    if schema:
        return json_answer(prompt, model, settings, schema["properties"])
    if texts:
        blocks = []
        for position, (index, text) in enumerate(texts):
            rating = rating_for(text, model, position, settings)
            blocks.append(f"#### Output for Text {index}\nRating: {rating}\nRationale: text {index} earns {rating}.")
        return "\n\n".join(blocks)
    responses = PROMETHEUS_RESPONSE.findall(prompt)
    if len(responses) == 2:
        a, b = (rating_for(text, model, i, settings) for i, (_, text) in enumerate(responses))
        return f"Feedback: A earns {a}, B earns {b}. [RESULT] {'A' if a >= b else 'B'}"
    if len(responses) == 1:
        score = rating_for(responses[0][1], model, 0, settings)
        return f"Feedback: the response earns {score}. [RESULT] {score}"
    return "I cannot find anything to rate."


def json_answer(prompt: str, model: str, settings: dict, properties: dict) -> str:
    """An answer with exactly the schema's properties."""
    texts = TEXT_BLOCK.findall(prompt)
    responses = PROMETHEUS_RESPONSE.findall(prompt)
    answer: dict = {}
    if "ratings" in properties:
        ratings = [rating_for(text, model, position, settings) for position, (_, text) in enumerate(texts)]
        if "rationales" in properties:
            answer["rationales"] = [f"text {i + 1} earns {r}." for i, r in enumerate(ratings)]
        answer["ratings"] = ratings
    else:
        scores = [rating_for(text, model, i, settings) for i, (_, text) in enumerate(responses)]
        if "feedback" in properties:
            answer["feedback"] = "the responses earn " + ", ".join(map(str, scores)) + "."
        if "score" in properties:
            answer["score"] = scores[0] if scores else 3
        if "result" in properties:
            answer["result"] = "A" if len(scores) < 2 or scores[0] >= scores[1] else "B"
    return json.dumps(answer)


class JudgeServer:
    def __init__(self, latency_ms: float = 0.0):
        self.settings = dict(DEFAULTS, latency_ms=latency_ms)
        self.reset_stats()

    def reset_stats(self):
        self.stats = {"requests": 0, "completions": 0, "by_status": {}, "in_flight": 0, "max_in_flight": 0,
                      "prompt_tokens": 0, "completion_tokens": 0, "models": {}, "first_request_at": None,
                      "last_request_at": None, "authorization": [], "prompts": [], "held_seconds": 0.0,
                      "response_formats": []}
        self._window = (None, 0, 0)  # the rate-limit window: its start, requests and tokens in it

    def _capacity(self, slots: int) -> asyncio.Semaphore:
        if getattr(self, "_slots", (0, None))[0] != slots:
            self._slots = (slots, asyncio.Semaphore(slots))
        return self._slots[1]

    def _rate_window(self, settings: dict, tokens: int) -> tuple[bool, dict]:
        """Count this request in the current window: whether it is over a limit, and the x-ratelimit headers."""
        now = time.monotonic()
        window = settings["ratelimit_window_ms"] / 1000
        start, used_requests, used_tokens = getattr(self, "_window", (None, 0, 0))
        if start is None or now - start >= window:
            start, used_requests, used_tokens = now, 0, 0
        limit_r, limit_t = int(settings["ratelimit_requests"]), int(settings["ratelimit_tokens"])
        over = (limit_r and used_requests + 1 > limit_r) or (limit_t and used_tokens + tokens > limit_t)
        if not over:
            used_requests, used_tokens = used_requests + 1, used_tokens + tokens
        self._window = (start, used_requests, used_tokens)
        reset = f"{math.ceil(max(0.0, (start + window - now) * 1000))}ms"  # up: a client waiting it out is in time
        headers = {}
        if limit_r:
            headers.update({"x-ratelimit-limit-requests": str(limit_r),
                            "x-ratelimit-remaining-requests": str(limit_r - used_requests),
                            "x-ratelimit-reset-requests": reset})
        if limit_t:
            headers.update({"x-ratelimit-limit-tokens": str(limit_t),
                            "x-ratelimit-remaining-tokens": str(limit_t - used_tokens),
                            "x-ratelimit-reset-tokens": reset})
        return bool(over), headers

    def _count(self, status: int):
        self.stats["by_status"][str(status)] = self.stats["by_status"].get(str(status), 0) + 1

    def _answer(self, number: int, prompt: str, model: str, settings: dict, now: float,
                auth: str | None = None, response_format: dict | None = None) -> tuple[int, dict, dict]:
        """Status, JSON body and headers of the response to request `number`: an injected fault or the answer."""
        echo = f" (you sent Authorization: {auth})" if settings["echo_authorization"] else ""
        if number <= settings["rate_limit_first_n"]:
            return 429, {"error": {"message": "rate limited"}}, {"Retry-After": str(settings["retry_after"])}
        failing = number <= settings["fail_first_n"] or (
            settings["fail_every"] and number % settings["fail_every"] == 0) or (
            settings["fail_if_contains"] and settings["fail_if_contains"] in prompt)
        if failing:
            status = int(settings["fail_status"])
            return status, {"error": {"message": f"injected failure {status}{echo}"}}, {}
        garbage = number <= settings["garbage_first_n"] or (
            settings["garbage_if_contains"] and settings["garbage_if_contains"] in prompt)
        text = ("Both answers are fine I guess." if garbage else answer_for(prompt, model, settings, response_format)) + echo
        usage = {"prompt_tokens": len(prompt) // 4, "completion_tokens": len(text) // 4}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        if number <= settings["odd_shape_first_n"]:
            half = len(text) // 2
            return 200, {"model": 7, "usage": {"prompt_tokens": str(usage["prompt_tokens"]), "completion_tokens": 1.5},
                         "choices": [{"message": {"role": "assistant", "content": [
                             {"type": "text", "text": text[:half]}, {"type": "image_url", "image_url": {"url": "x"}},
                             {"type": "text", "text": text[half:]}]}}]}, {}
        body = {
            "id": f"fake-{number}", "object": "chat.completion", "created": int(now), "model": model + echo,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": usage,
        }
        if settings["omit_usage"]:
            del body["usage"]
        return 200, body, {}

    async def chat(self, request):
        from aiohttp import web

        stats, settings = self.stats, self.settings
        entered = time.perf_counter()
        stats["requests"] += 1
        number = stats["requests"]
        now = time.time()
        stats["first_request_at"] = stats["first_request_at"] or now
        stats["last_request_at"] = now
        stats["in_flight"] += 1
        stats["max_in_flight"] = max(stats["max_in_flight"], stats["in_flight"])
        try:
            body = await request.json()
            model = str(body.get("model") or "fake-judge")
            prompt = "\n".join(str(m.get("content") or "") for m in body.get("messages", []))
            stats["models"][model] = stats["models"].get(model, 0) + 1
            auth = request.headers.get("Authorization")
            if auth and auth not in stats["authorization"]:
                stats["authorization"].append(auth)
            if settings["record_prompts"]:
                stats["prompts"].append(prompt)
            # The answer is made first, then sent `latency_ms` after the request arrived: the latency is the
            # whole time the server holds a request, as with a real one (made after the wait, it added this
            # server's own CPU time to every answer, and to each answer queued behind it).
            response_format = body.get("response_format")
            if response_format and response_format not in stats["response_formats"]:
                stats["response_formats"].append(response_format)
            status, payload, headers = self._answer(number, prompt, model, settings, now, auth, response_format)
            if settings["ratelimit_requests"] or settings["ratelimit_tokens"]:
                over, limits = self._rate_window(settings, len(prompt) // 4 + int(body.get("max_tokens") or 0))
                if over:
                    status, payload, headers = 429, {"error": {"message": "rate limit reached"}}, {}
                headers = {**headers, **limits}
            if settings["reject_above"] and stats["in_flight"] > settings["reject_above"]:
                status, payload, headers = 429, {"error": {"message": "too many requests in flight"}}, {}
                self._count(status)
                return web.Response(body=json.dumps(payload).encode(), status=status, content_type="application/json")
            body = json.dumps(payload).encode()
            if settings["max_concurrency"]:  # a slot first; then the latency, from when it got one
                async with self._capacity(int(settings["max_concurrency"])):
                    await asyncio.sleep(settings["latency_ms"] / 1000)
            elif settings["latency_ms"]:
                await asyncio.sleep(max(0.0, entered + settings["latency_ms"] / 1000 - time.perf_counter()))
            if number <= settings["hang_first_n"] or (
                    settings["hang_if_contains"] and settings["hang_if_contains"] in prompt):
                await asyncio.sleep(settings["hang_ms"] / 1000)
            self._count(status)
            if status == 200:
                for name in ("prompt_tokens", "completion_tokens"):
                    stats[name] += int(float(payload.get("usage", {}).get(name, 0)))
                stats["completions"] += 1
            return web.Response(body=body, status=status, headers=headers, content_type="application/json")
        finally:
            stats["in_flight"] -= 1
            stats["held_seconds"] += time.perf_counter() - entered

    async def control(self, request):
        from aiohttp import web

        changes = await request.json()
        unknown = set(changes) - set(DEFAULTS)
        if unknown:
            return web.json_response({"error": f"unknown settings {sorted(unknown)}"}, status=400)
        self.settings.update(changes)
        return web.json_response(self.settings)

    async def reset(self, request):
        from aiohttp import web

        latency = self.settings["latency_ms"] if (await request.text()) == "keep-latency" else 0.0
        self.settings = dict(DEFAULTS, latency_ms=latency)
        self.reset_stats()
        return web.json_response(self.settings)

    def app(self):
        from aiohttp import web

        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_get("/v1/models", lambda r: web.json_response(
            {"object": "list", "data": [{"id": "fake-judge", "object": "model"}]}))
        app.router.add_get("/health", lambda r: web.json_response({"status": "ok"}))
        app.router.add_post("/control", self.control)
        app.router.add_post("/reset", self.reset)
        app.router.add_get("/stats", lambda r: web.json_response(self.stats))
        return app


def serve(host: str, port: int, latency_ms: float):
    from aiohttp import web

    async def main():
        runner = web.AppRunner(JudgeServer(latency_ms).app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port, backlog=4096)
        await site.start()
        bound = site._server.sockets[0].getsockname()[1]
        print(f"LISTENING http://{host}:{bound}/v1", flush=True)
        await asyncio.Event().wait()

    try:
        import uvloop  # in the dev extra: ~1 ms instead of ~3 ms added to each answer at 640 requests/s

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main())


class FakeJudge(ServerProcess):
    """Starts the server as a subprocess and talks to its control API."""

    def __init__(self, latency_ms: float = 0.0, host: str = "127.0.0.1"):
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--host", host, "--port", "0",
             "--latency-ms", str(latency_ms)],
            stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        if not line.startswith("LISTENING "):
            self.process.kill()
            raise RuntimeError(f"fake judge did not start: {line!r}")
        self.url = line.split()[1]  # .../v1, as an OpenAI base_url
        self.root = self.url.rsplit("/v1", 1)[0]

    def _call(self, method: str, path: str, payload=None):
        data = None if payload is None else (payload if isinstance(payload, bytes) else json.dumps(payload).encode())
        request = urllib.request.Request(self.root + path, data=data, method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def control(self, **settings) -> dict:
        return self._call("POST", "/control", settings)

    def reset(self, keep_latency: bool = False) -> dict:
        return self._call("POST", "/reset", b"keep-latency" if keep_latency else b"")

    def stats(self) -> dict:
        return self._call("GET", "/stats")



if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    serve(args.host, args.port, args.latency_ms)
