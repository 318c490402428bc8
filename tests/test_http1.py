"""The judge's own HTTP/1.1 client (judge/engines/http1.py) against a real loopback server answering in the
framings real servers and proxies use: chunked, delimited by close, 100 Continue, a connection cut short, a
keep-alive connection the server closed while it was idle, an answer that never comes."""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "servers"))
from raw_http import BODY, RawHTTPServer  # noqa: E402

from prefclean.config.judges import OpenAIJudge  # noqa: E402
from prefclean.judge.engines.base import EngineError, GenerationParams  # noqa: E402
from prefclean.judge.engines.http1 import Endpoint, HTTPFailure  # noqa: E402
from prefclean.judge.engines.openai import OpenAIEngine  # noqa: E402


@pytest.fixture(scope="module")
def server():
    with RawHTTPServer() as s:
        yield s


def post(endpoint: Endpoint, *modes: str, timeout: float = 5.0) -> list:
    """Send one request per mode, one after another on the same endpoint (so connections are reused)."""

    async def run():
        out = []
        for mode in modes:
            try:
                out.append(await endpoint.post(json.dumps({"mode": mode}).encode(), timeout))
            except (HTTPFailure, asyncio.TimeoutError) as exc:
                out.append(exc)
        endpoint.close()
        return out

    return asyncio.run(run())


def test_a_plain_answer_is_read_and_the_connection_is_kept_for_the_next_request(server):
    first, second = post(Endpoint(server.url + "/v1/chat/completions", {}), "plain", "plain")
    assert (first.status, first.body, second.body) == (200, BODY, BODY)
    assert first.headers["x-connection"] == second.headers["x-connection"]


def test_a_chunked_answer_with_an_extension_and_a_trailer_is_read_whole(server):
    chunked, after = post(Endpoint(server.url + "/v1/chat/completions", {}), "chunked", "plain")
    assert chunked.body == BODY and after.body == BODY
    assert chunked.headers["x-connection"] == after.headers["x-connection"]  # the trailer was consumed


def test_an_answer_delimited_by_the_end_of_the_connection_is_read_and_the_next_one_opens_a_new_one(server):
    closed, after = post(Endpoint(server.url + "/v1/chat/completions", {}), "close", "plain")
    assert closed.body == BODY and after.body == BODY
    assert closed.headers["x-connection"] != after.headers["x-connection"]


def test_100_continue_is_skipped_for_the_answer_that_follows(server):
    (answer,) = post(Endpoint(server.url + "/v1/chat/completions", {}), "continue")
    assert (answer.status, answer.body) == (200, BODY)


def test_a_connection_the_server_closed_while_idle_is_replaced_and_the_request_succeeds(server):
    async def run():
        endpoint = Endpoint(server.url + "/v1/chat/completions", {})
        first = await endpoint.post(b'{"mode": "idle_close"}', 5)
        await asyncio.sleep(0.3)  # the server closes the idle connection meanwhile
        second = await endpoint.post(b'{"mode": "plain"}', 5)
        endpoint.close()
        return first, second

    first, second = asyncio.run(run())
    assert second.body == BODY and first.headers["x-connection"] != second.headers["x-connection"]


def test_an_answer_cut_short_is_a_failure_not_a_short_body(server):
    (cut,) = post(Endpoint(server.url + "/v1/chat/completions", {}), "cut")
    assert isinstance(cut, HTTPFailure) and "server disconnected" in str(cut)


def test_an_answer_with_a_contradictory_framing_is_a_failure_that_says_why(server):
    malformed, after = post(Endpoint(server.url + "/v1/chat/completions", {}), "malformed", "plain")
    assert isinstance(malformed, HTTPFailure) and not malformed.reused
    assert str(malformed) == "malformed HTTP answer (Duplicate Content-Length)"
    assert after.body == BODY  # on a new connection: the broken one was closed


def test_an_answer_that_never_comes_times_out(server):
    (hung,) = post(Endpoint(server.url + "/v1/chat/completions", {}), "hang", timeout=0.3)
    assert isinstance(hung, asyncio.TimeoutError)


def test_the_head_names_the_host_the_path_the_length_and_the_urls_credentials_as_basic_auth(server):
    host = server.url.split("://", 1)[1]
    url = server.url.replace("://", "://bob:p%40ss@") + "/v1/chat/completions?api-version=2"
    (answer,) = post(Endpoint(url, {"Content-Type": "application/json"}), "head")
    head = answer.body.decode()
    assert head.startswith("POST /v1/chat/completions?api-version=2 HTTP/1.1\r\n")
    assert f"Host: {host}\r\n" in head and "Content-Type: application/json\r\n" in head
    assert f"Authorization: Basic {base64.b64encode(b'bob:p@ss').decode()}\r\n" in head
    assert f"Content-Length: {len(json.dumps({'mode': 'head'}))}\r\n" in head


def test_nothing_listening_is_the_engines_cannot_reach_error():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    engine = OpenAIEngine(OpenAIJudge(name="j", engine="openai", model="m", base_url=f"http://127.0.0.1:{port}/v1"))
    with pytest.raises(EngineError) as caught:
        asyncio.run(engine.complete([{"role": "user", "content": "hi"}], GenerationParams()))
    assert f"cannot reach http://127.0.0.1:{port}/v1" in str(caught.value) and caught.value.retryable


def test_the_request_body_is_the_chat_completions_json_with_the_parameters_encoded_once():
    engine = OpenAIEngine(OpenAIJudge(name="j", engine="openai", model="m", base_url="http://127.0.0.1:9/v1",
                                      extra_body={"top_k": 5}))
    params = GenerationParams(max_tokens=7, temperature=0.5, seed=3)
    messages = [{"role": "user", "content": "é \"quoted\""}]
    for _ in range(2):  # the second from the cached tail
        assert json.loads(engine._payload(messages, params)) == engine.body(messages, params)
    schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}
    assert json.loads(engine._payload(messages, params, response_format=schema)) == \
        engine.body(messages, params, response_format=schema)


def test_https_is_spoken_with_the_system_trust_store_and_refused_for_an_untrusted_certificate(tmp_path, monkeypatch):
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl (to make a certificate) is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    with RawHTTPServer((str(cert), str(key))) as tls:
        assert tls.url.startswith("https://")
        (refused,) = post(Endpoint(tls.url + "/v1/chat/completions", {}), "plain")
        assert isinstance(refused, HTTPFailure) and "CERTIFICATE_VERIFY_FAILED" in str(refused)
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # now trusted, as a corporate CA would be
        first, second = post(Endpoint(tls.url + "/v1/chat/completions", {}), "plain", "chunked")
        assert first.body == BODY and second.body == BODY
        assert first.headers["x-connection"] == second.headers["x-connection"]


def test_a_body_orjson_refuses_is_sent_as_the_json_module_writes_it():
    """A lone surrogate in the data, or a YAML mapping with integer keys in extra_body (logit_bias)."""
    engine = OpenAIEngine(OpenAIJudge(name="j", engine="openai", model="m", base_url="http://127.0.0.1:9/v1",
                                      extra_body={"logit_bias": {50256: -100}}))
    messages = [{"role": "user", "content": "bad \ud800 surrogate"}]
    payload = engine._payload(messages, GenerationParams())
    assert json.loads(payload) == json.loads(json.dumps(engine.body(messages, GenerationParams())))
    assert b"\\ud800" in payload


def test_a_gzip_answer_nobody_asked_for_is_decompressed(server):
    (answer,) = post(Endpoint(server.url + "/v1/chat/completions", {}), "gzip")
    assert answer.body == BODY and answer.headers["content-encoding"] == "gzip"
