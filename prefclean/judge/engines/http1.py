"""A lean HTTP/1.1 client for the judge's one request shape: POST a JSON body, read a JSON answer.

Why not aiohttp for this: at a few hundred requests per second the judge's event loop is the bottleneck,
and aiohttp's general-purpose request path (cookie jar, redirects, tracing, multidicts, URL objects, payload
registry, a task per write) cost ~150 µs of CPU per request on this path: more than everything else prefclean
does for a judgment. Here a request is one bytes object written to a kept-alive connection (the head's fixed
part made once per replica), read back by a small asyncio Protocol.

What httptools does (MagicStack's binding of llhttp, Node.js's parser): it reads the answer's status line and
headers, its framing (Content-Length, chunked with extensions and trailers, or until close), and says whether
the connection may be kept alive; a malformed answer is its HttpParserError, reported as HTTPFailure.
What remains ours: the connection pool, the request head, skipping 100 Continue for the answer that follows,
ending a body delimited by the connection's end (llhttp has no end-of-input call in httptools), a limit on
the head's size, gzip/deflate (zlib), time-outs, and sending a request again on a fresh connection.

TLS is asyncio's own (the system's trust store, as aiohttp's default). No proxy is used (aiohttp's default
too: prefclean never set trust_env); no redirect is followed (an API that redirects a POST is misconfigured,
and the 3xx is reported as a refused request); no compression is asked for, but a gzip or deflate answer
(some proxies send one anyway) is decompressed.

A connection that a server closed while it sat idle is found when the next request gets nothing back: that
request is sent once more on a new connection (as aiohttp does for a reused connection), so a keep-alive
time-out on the server does not fail a row.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import ssl
import zlib
from urllib.parse import unquote, urlsplit

import httptools

MAX_HEAD = 64 * 1024  # a response head larger than this is not an HTTP server we can talk to


class HTTPFailure(Exception):
    """No complete answer: the connection failed, was closed, or the answer is not HTTP. `reused`: the request
    went out on a kept-alive connection and not a byte came back (the server had closed it: send again)."""

    def __init__(self, message: str, reused: bool = False):
        super().__init__(message)
        self.reused = reused


class Response:
    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: dict[str, str], body: bytes):
        self.status, self.headers, self.body = status, headers, body


class _Connection(asyncio.Protocol):
    """One kept-alive connection; one request at a time. httptools (llhttp) reads the answer's head, framing
    and keep-alive and calls back here with its parts; 100 Continue, a body ended by the connection's end,
    the head's size limit and decompression are ours."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future | None = None
        self.closed = False
        self.used = False  # it has carried a request before: a silent close means a stale connection
        self._reset()

    def _reset(self) -> None:
        self.headers: dict[str, str] | None = None  # set when the head is complete
        self.fields: dict[str, str] = {}
        self.chunks: list[bytes] = []
        self.head_bytes = 0
        self.received = False

    # -- asyncio.Protocol ---------------------------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.waiter is None:  # bytes nobody asked for, on an idle connection: not one to send on again
            self.close()
            return
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(HTTPFailure("malformed HTTP answer (101 Switching Protocols to a POST)"))
            return
        except httptools.HttpParserError as exc:
            self._fail(HTTPFailure(f"malformed HTTP answer ({exc})"))
            return
        if self.headers is None and self.waiter is not None:
            self.head_bytes += len(data)
            if self.head_bytes > MAX_HEAD:  # (llhttp sets no limit of its own)
                self._fail(HTTPFailure("malformed HTTP answer (no end of its head)"))

    def eof_received(self):
        if self.waiter is not None and self.headers is not None and "content-length" not in self.headers \
                and "chunked" not in self.headers.get("transfer-encoding", "").lower():
            self._finish()  # a body delimited by the end of the connection (llhttp has no end-of-input call)
        return False  # close the transport

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            reused = self.used and not self.received
            reason = f": {exc}" if exc else ""
            self._fail(HTTPFailure(f"server disconnected{reason}", reused=reused))

    # -- httptools callbacks --------------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self.waiter is None:  # bytes past the answer: the next one could not be read
            self.close()

    def on_header(self, name: bytes, value: bytes) -> None:
        fields, key, text = self.fields, name.decode("latin-1").lower(), value.decode("latin-1")
        fields[key] = f"{fields[key]}, {text}" if key in fields else text

    def on_headers_complete(self) -> None:
        self.headers = self.fields

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        if 100 <= self.parser.get_status_code() < 200:  # 100 Continue and friends: the real answer follows
            self._reset()
            self.received = True
        else:
            self._finish()

    # -- one exchange --------------------------------------------------------------------------------------
    def send(self, request: bytes) -> asyncio.Future:
        self._reset()
        self.waiter = self.loop.create_future()
        self.transport.write(request)
        return self.waiter

    def expire(self) -> None:
        """The request's time is up (a timer): no answer is read from this connection any more."""
        self._fail(asyncio.TimeoutError())

    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.close()

    def _finish(self) -> None:
        headers = self.headers
        body = self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)
        encoding = headers.get("content-encoding", "").lower()
        if encoding in ("gzip", "x-gzip", "deflate"):
            try:
                body = _decompress(body, encoding)
            except zlib.error as exc:
                self._fail(HTTPFailure(f"malformed {encoding} answer: {exc}"))
                return
        waiter, self.waiter = self.waiter, None
        self.used = True
        if not self.parser.should_keep_alive():
            self.close()
        if waiter is not None and not waiter.done():
            waiter.set_result(Response(self.parser.get_status_code(), headers, body))

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


def _decompress(body: bytes, encoding: str) -> bytes:
    if encoding != "deflate":
        return zlib.decompress(body, 16 + zlib.MAX_WBITS)
    try:
        return zlib.decompress(body)  # deflate as HTTP means it: zlib-wrapped
    except zlib.error:
        return zlib.decompress(body, -zlib.MAX_WBITS)  # raw deflate, as some servers send it


class Endpoint:
    """POSTs to one URL over a pool of kept-alive connections (as many as requests in flight at once).

    `headers`: sent with every request (Host, Content-Length and the URL's user:password@ as Basic auth are
    added here)."""

    def __init__(self, url: str, headers: dict[str, str]):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl = ssl.create_default_context() if parts.scheme == "https" else None
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        host = parts.netloc.rpartition("@")[2]
        fields = {"Host": host, "User-Agent": "prefclean", "Accept": "application/json", **headers}
        if parts.username is not None and "Authorization" not in fields:
            credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            fields["Authorization"] = "Basic " + base64.b64encode(credentials).decode()
        self.head = (f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
                     + "Content-Length: ").encode("latin-1")
        self._idle: collections.deque[_Connection] = collections.deque()

    async def post(self, body: bytes, timeout: float) -> Response:
        """The answer to one POST of `body` within `timeout` seconds (connecting included): HTTPFailure when
        none came, asyncio.TimeoutError when it came too late."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        request = b"".join((self.head, str(len(body)).encode(), b"\r\n\r\n", body))
        connection = await self._connection(loop, deadline)
        try:
            return await self._exchange(loop, connection, request, deadline)
        except HTTPFailure as exc:
            if not exc.reused:
                raise
        # the server had closed the idle connection: once more on a new one
        return await self._exchange(loop, await self._connect(loop, deadline), request, deadline)

    async def _exchange(self, loop, connection: _Connection, request: bytes, deadline: float) -> Response:
        expiry = loop.call_at(deadline, connection.expire)
        try:
            response = await connection.send(request)
        except BaseException:  # a failure, a time-out or cancelled: the connection's state is unknown
            connection.close()
            raise
        finally:
            expiry.cancel()
        if not connection.closed:
            self._idle.append(connection)
        return response

    async def _connection(self, loop, deadline: float) -> _Connection:
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed:
                return connection
        return await self._connect(loop, deadline)

    async def _connect(self, loop, deadline: float) -> _Connection:
        try:
            _, connection = await asyncio.wait_for(loop.create_connection(
                lambda: _Connection(loop), self.host, self.port, ssl=self.ssl,
                server_hostname=self.host if self.ssl is not None else None), max(0.0, deadline - loop.time()))
        except asyncio.TimeoutError:  # (an OSError too, from Python 3.11)
            raise
        except (OSError, ssl.SSLError) as exc:
            raise HTTPFailure(f"cannot connect to {self.host}:{self.port}: {exc}") from None
        return connection

    async def open_idle(self, count: int, timeout: float) -> int:
        """Open `count` connections now, kept idle for the next requests (a build that is about to send many:
        connecting then happens before its first request is ready, not on its way); how many opened. One that
        fails is not retried here: the requests meet the failure and report it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        opened = await asyncio.gather(*(self._connect(loop, deadline) for _ in range(count)), return_exceptions=True)
        connections = [c for c in opened if isinstance(c, _Connection)]
        self._idle.extend(connections)
        return len(connections)

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()
