"""A loopback proxy in front of osmem that carries out the few Painless scripts argilla-server sends.

osmem (the in-memory OpenSearch of the test stack) refuses scripted updates ("update with script is not
supported by osmem"), and argilla-server indexes every single response an annotator submits, edits or deletes
(POST /records/{id}/responses, PUT/DELETE /responses/{id}, /me/responses/bulk) with one, so without this
annotators could not review anything; only an owner's bulk record upsert worked. The proxy recognises
argilla-server 2.8's three scripts (search_engine/commons.py: a response added or replaced by id, a response
removed by id, a suggestion removed by question name), reads the document, applies the change in Python and
writes the whole document back (PUT _doc), which osmem supports. Every other request passes through unchanged;
an unknown script reaches osmem and fails there, as it would without the proxy.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

UPDATE_PATH = re.compile(r"^/(?P<index>[^/?]+)/_update/(?P<id>[^/?]+)(?P<query>\?.*)?$")
SUGGESTION_REMOVE = re.compile(r'ctx\._source\["suggestions"\]\.remove\("(?P<name>[^"]+)"\)')


def apply_script(source: dict, script) -> dict | None:
    """The document after the script, or None for a script this proxy does not know."""
    text = script if isinstance(script, str) else script.get("source", "")
    params = {} if isinstance(script, str) else script.get("params") or {}
    if "ctx._source.responses" in text and "response" in params:
        response = params["response"]
        kept = [r for r in source.get("responses") or [] if r.get("id") != response.get("id")]
        if "ctx._source.responses.add" in text:
            kept.append(response)
        return {**source, "responses": kept}
    found = SUGGESTION_REMOVE.search(text)
    if found:
        suggestions = dict(source.get("suggestions") or {})
        suggestions.pop(found.group("name"), None)
        return {**source, "suggestions": suggestions}
    return None


class ScriptProxy:
    """ScriptProxy(osmem_url).start() -> .url, for ARGILLA_ELASTICSEARCH; stop() when done."""

    def __init__(self, upstream: str):
        parts = urlsplit(upstream)
        self.host, self.port = parts.hostname, parts.port
        self.scripts_applied = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().strip() or b"0", 16)
                        if size == 0:
                            self.rfile.readline()
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _handle(self):
                body = self._body()
                status, headers, payload = proxy._scripted(self.command, self.path, body)
                if status is None:
                    status, headers, payload = proxy._forward(self.command, self.path, body, self.headers)
                self.send_response(status)
                for key, value in headers:
                    if key.lower() not in ("transfer-encoding", "content-length", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> "ScriptProxy":
        threading.Thread(target=self.server.serve_forever, name="osmem-script-proxy", daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _forward(self, method: str, path: str, body: bytes, headers=None):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            sent = {k: v for k, v in (headers or {}).items()
                    if k.lower() not in ("host", "content-length", "transfer-encoding", "connection")}
            if body or method in ("POST", "PUT"):
                sent["Content-Length"] = str(len(body))
            conn.request(method, path, body=body or None, headers=sent)
            resp = conn.getresponse()
            payload = resp.read()
            return resp.status, resp.getheaders(), payload
        finally:
            conn.close()

    def _scripted(self, method: str, path: str, body: bytes):
        """(status, headers, payload) for a scripted update this proxy carries out, else (None, None, None)."""
        found = UPDATE_PATH.match(path)
        if method != "POST" or not found or b'"script"' not in body:
            return None, None, None
        script = json.loads(body).get("script")
        index, doc_id, query = found.group("index"), found.group("id"), found.group("query") or ""
        status, headers, payload = self._forward("GET", f"/{index}/_doc/{doc_id}", b"", {})
        if status != 200:
            return status, headers, payload
        document = apply_script(json.loads(payload).get("_source") or {}, script)
        if document is None:
            return None, None, None
        self.scripts_applied += 1
        status, headers, payload = self._forward("PUT", f"/{index}/_doc/{doc_id}{query}",
                                                 json.dumps(document).encode(), {"Content-Type": "application/json"})
        if status in (200, 201):  # answer as an update does
            reply = json.loads(payload)
            payload = json.dumps({**reply, "result": "updated"}).encode()
            status = 200
        return status, headers, payload
