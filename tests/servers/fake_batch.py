"""A fake OpenAI Files + Batch API on 127.0.0.1, implementing the documented endpoints the tests need.

Why: the `openai-batch` engine must be shown to work through the real HTTP protocol (multipart upload, batch
objects, polling, output and error files) without OpenAI. Endpoints, as OpenAI documents them:
  POST /v1/files (multipart: purpose=batch, file=JSONL)          -> a file object {id, object: "file", bytes, ...}
  POST /v1/batches {input_file_id, endpoint, completion_window}   -> a batch object, status "validating"
  GET  /v1/batches/{id}                                           -> the batch object (each GET moves it on)
  GET  /v1/batches?limit=N                                        -> {object: "list", data: [...]}
  GET  /v1/files/{id}/content                                     -> the file's bytes
Each input line is {custom_id, method: POST, url: /v1/chat/completions, body}; an output line is {id, custom_id,
response: {status_code, request_id, body}, error: null}; a failed request's line goes to the error file with
its non-200 response, an expired one with error {code: "batch_expired", message}. The answers are the fake
judge's (servers/fake_judge.py: `[[rate=K]]` markers, JSON when the body has a response_format).

A batch goes validating -> in_progress -> finalizing -> completed, one step per GET after `steps_before_done`
GETs in progress (`hold: true` keeps it in progress until released). Faults, set with POST /control (JSON):
  fail_next_batches: N   the next N batches fail validation (status failed, `errors`, no output file);
  expire_next_batches: N the next N batches expire after answering `expire_after` lines (the rest go to the error
                         file as batch_expired);
  error_if_contains: S   a request whose prompt contains S gets a 500 in the error file;
  max_requests_per_file: N  a file of more lines fails validation (as OpenAI's 50,000 limit does);
  unavailable_next: N    the next N calls to /v1/... answer 503 with Retry-After: 0 (a busy provider).
GET /stats: files uploaded (their line counts), batches created, their statuses, GETs. POST /reset clears all.

Run: python tests/servers/fake_batch.py [--port 0] -> prints "LISTENING <base_url>".
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

try:  # run as a script or imported from the tests
    from .fake_judge import DEFAULTS as JUDGE_DEFAULTS, answer_for
    from .process import ServerProcess
except ImportError:
    from fake_judge import DEFAULTS as JUDGE_DEFAULTS, answer_for
    from process import ServerProcess

DEFAULTS = {"steps_before_done": 1, "hold": False, "fail_next_batches": 0, "expire_next_batches": 0,
            "expire_after": 1, "error_if_contains": None, "max_requests_per_file": 50_000, "unavailable_next": 0}
ORDER = ("validating", "in_progress", "finalizing", "completed")


class BatchServer:
    def __init__(self):
        self.reset_all()

    def reset_all(self):
        self.settings = dict(DEFAULTS)
        self.files: dict[str, dict] = {}
        self.batches: dict[str, dict] = {}
        self.plans: dict[str, dict] = {}  # batch id -> how it will end
        self.ids = itertools.count(1)
        self.stats = {"uploads": [], "batches_created": 0, "gets": 0, "content_reads": 0, "authorization": [],
                      "unavailable": []}

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self.ids):04d}"

    def _file(self, content: bytes, purpose: str, filename: str) -> dict:
        file_id = self._new_id("file")
        self.files[file_id] = {"id": file_id, "object": "file", "bytes": len(content), "created_at": int(time.time()),
                               "filename": filename, "purpose": purpose, "content": content}
        return {k: v for k, v in self.files[file_id].items() if k != "content"}

    async def upload(self, request):
        from aiohttp import web

        self._auth(request)
        form = await request.post()
        purpose, upload = form.get("purpose"), form.get("file")
        if purpose != "batch" or upload is None or not hasattr(upload, "file"):
            return web.json_response({"error": {"message": "purpose=batch and a file are required"}}, status=400)
        content = upload.file.read()
        info = self._file(content, purpose, upload.filename)
        self.stats["uploads"].append({"id": info["id"], "lines": content.count(b"\n"), "bytes": len(content)})
        return web.json_response(info)

    async def create(self, request):
        from aiohttp import web

        self._auth(request)
        body = await request.json()
        file = self.files.get(body.get("input_file_id"))
        if file is None or body.get("endpoint") != "/v1/chat/completions" or body.get("completion_window") != "24h":
            return web.json_response({"error": {"message": f"bad batch request {body}"}}, status=400)
        batch_id = self._new_id("batch")
        self.stats["batches_created"] += 1
        lines = [json.loads(line) for line in file["content"].splitlines() if line.strip()]
        plan = {"lines": lines, "gets": 0, "end": "completed"}
        if self.settings["fail_next_batches"] > 0:
            self.settings["fail_next_batches"] -= 1
            plan["end"] = "failed"
        elif len(lines) > self.settings["max_requests_per_file"]:
            plan["end"] = "failed"
        elif self.settings["expire_next_batches"] > 0:
            self.settings["expire_next_batches"] -= 1
            plan["end"] = "expired"
        plan["error_if_contains"] = self.settings["error_if_contains"]
        self.plans[batch_id] = plan
        self.batches[batch_id] = {
            "id": batch_id, "object": "batch", "endpoint": body["endpoint"], "errors": None,
            "input_file_id": file["id"], "completion_window": "24h", "status": "validating", "output_file_id": None,
            "error_file_id": None, "created_at": int(time.time()), "metadata": body.get("metadata"),
            "request_counts": {"total": 0, "completed": 0, "failed": 0}}
        return web.json_response(self.batches[batch_id])

    def _advance(self, batch_id: str) -> None:
        batch, plan = self.batches[batch_id], self.plans[batch_id]
        if batch["status"] not in ORDER[:-1]:
            return
        plan["gets"] += 1
        if batch["status"] == "validating":
            if plan["end"] == "failed":
                too_many = len(plan["lines"]) > self.settings["max_requests_per_file"]
                message = (f"the file has {len(plan['lines'])} requests, more than the "
                           f"{self.settings['max_requests_per_file']} allowed" if too_many else "injected failure")
                batch.update(status="failed", failed_at=int(time.time()), errors={"object": "list", "data": [
                    {"code": "invalid_request", "message": message, "line": None, "param": None}]})
                return
            batch["status"] = "in_progress"
            batch["request_counts"]["total"] = len(plan["lines"])
            return
        if batch["status"] == "in_progress":
            if self.settings["hold"] or plan["gets"] <= self.settings["steps_before_done"] + 1:
                return
            if plan["end"] == "expired":
                self._finish(batch_id, expire_after=self.settings["expire_after"])
                batch.update(status="expired", expired_at=int(time.time()))
                return
            batch["status"] = "finalizing"
            return
        self._finish(batch_id)
        batch.update(status="completed", completed_at=int(time.time()))

    def _finish(self, batch_id: str, expire_after: int | None = None) -> None:
        """Answer the lines: the output file, and the error file for the failed or expired ones."""
        batch, plan = self.batches[batch_id], self.plans[batch_id]
        out, errors = [], []
        for number, line in enumerate(plan["lines"]):
            body = line.get("body") or {}
            prompt = "\n".join(str(m.get("content") or "") for m in body.get("messages", []))
            request_id = f"req-{batch_id}-{number}"
            if expire_after is not None and number >= expire_after:
                errors.append({"id": f"batch_req_{number}", "custom_id": line["custom_id"], "response": None,
                               "error": {"code": "batch_expired", "message": "This request could not be executed "
                                         "before the completion window expired."}})
            elif plan["error_if_contains"] and plan["error_if_contains"] in prompt:
                errors.append({"id": f"batch_req_{number}", "custom_id": line["custom_id"], "error": None,
                               "response": {"status_code": 500, "request_id": request_id,
                                            "body": {"error": {"message": "injected server error"}}}})
            else:
                model = str(body.get("model") or "fake-judge")
                text = answer_for(prompt, model, dict(JUDGE_DEFAULTS), body.get("response_format"))
                usage = {"prompt_tokens": len(prompt) // 4, "completion_tokens": len(text) // 4}
                out.append({"id": f"batch_req_{number}", "custom_id": line["custom_id"], "error": None,
                            "response": {"status_code": 200, "request_id": request_id, "body": {
                                "id": f"chatcmpl-{number}", "object": "chat.completion", "model": model,
                                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                             "finish_reason": "stop"}],
                                "usage": {**usage, "total_tokens": sum(usage.values())}}}})
        dump = lambda rows: "".join(json.dumps(r) + "\n" for r in rows).encode()  # noqa: E731
        if out:
            batch["output_file_id"] = self._file(dump(out), "batch_output", "output.jsonl")["id"]
        if errors:
            batch["error_file_id"] = self._file(dump(errors), "batch_output", "errors.jsonl")["id"]
        batch["request_counts"] = {"total": len(plan["lines"]), "completed": len(out), "failed": len(errors)}

    async def get_batch(self, request):
        from aiohttp import web

        self._auth(request)
        batch_id = request.match_info["batch_id"]
        if batch_id not in self.batches:
            return web.json_response({"error": {"message": f"no batch {batch_id}"}}, status=404)
        self.stats["gets"] += 1
        self._advance(batch_id)
        return web.json_response(self.batches[batch_id])

    async def list_batches(self, request):
        from aiohttp import web

        self._auth(request)
        limit = int(request.query.get("limit", 20))
        return web.json_response({"object": "list", "data": list(self.batches.values())[-limit:]})

    async def content(self, request):
        from aiohttp import web

        self._auth(request)
        file = self.files.get(request.match_info["file_id"])
        if file is None:
            return web.json_response({"error": {"message": "no such file"}}, status=404)
        self.stats["content_reads"] += 1
        return web.Response(body=file["content"], content_type="application/octet-stream")

    def _auth(self, request) -> None:
        auth = request.headers.get("Authorization")
        if auth and auth not in self.stats["authorization"]:
            self.stats["authorization"].append(auth)

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

        self.reset_all()
        return web.json_response(self.settings)

    def report(self, request):
        from aiohttp import web

        statuses = {b["id"]: b["status"] for b in self.batches.values()}
        return web.json_response({**self.stats, "statuses": statuses})

    def app(self):
        from aiohttp import web

        @web.middleware
        async def busy(request, handler):
            if request.path.startswith("/v1/") and self.settings["unavailable_next"] > 0:
                self.settings["unavailable_next"] -= 1
                self.stats["unavailable"].append(f"{request.method} {request.path}")
                return web.json_response({"error": {"message": "the server is busy"}}, status=503,
                                         headers={"Retry-After": "0"})
            return await handler(request)

        app = web.Application(client_max_size=256 * 1024 * 1024, middlewares=[busy])
        app.router.add_post("/v1/files", self.upload)
        app.router.add_get("/v1/files/{file_id}/content", self.content)
        app.router.add_post("/v1/batches", self.create)
        app.router.add_get("/v1/batches", self.list_batches)
        app.router.add_get("/v1/batches/{batch_id}", self.get_batch)
        app.router.add_post("/control", self.control)
        app.router.add_post("/reset", self.reset)
        app.router.add_get("/stats", self.report)
        return app


def serve(host: str, port: int):
    from aiohttp import web

    async def main():
        runner = web.AppRunner(BatchServer().app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        print(f"LISTENING http://{host}:{site._server.sockets[0].getsockname()[1]}/v1", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


class FakeBatch(ServerProcess):
    """Starts the server as a subprocess and talks to its control API."""

    def __init__(self, host: str = "127.0.0.1"):
        self.process = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--host", host, "--port", "0"],
                                        stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        if not line.startswith("LISTENING "):
            self.process.kill()
            raise RuntimeError(f"fake batch server did not start: {line!r}")
        self.url = line.split()[1]
        self.root = self.url.rsplit("/v1", 1)[0]

    def _call(self, method: str, path: str, payload=None):
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(self.root + path, data=data, method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def control(self, **settings) -> dict:
        return self._call("POST", "/control", settings)

    def reset(self) -> dict:
        return self._call("POST", "/reset", {})

    def stats(self) -> dict:
        return self._call("GET", "/stats")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    serve(args.host, args.port)
