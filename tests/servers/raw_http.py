"""A loopback HTTP/1.1 server that answers in the framings real servers and proxies use, for the judge's own
HTTP client (prefclean/judge/engines/http1.py). aiohttp's server (the fake judge) always sends Content-Length
and keeps connections open; this one answers each POST as its JSON body's "mode" asks:

  plain       200 with Content-Length                 chunked   200, Transfer-Encoding: chunked, a trailer
  close       200 without a length, then closes       continue  "100 Continue", then a plain 200
  cut         a head promising 100 bytes, 10 of them, then closes the connection
  gzip        a plain 200 whose body is gzip-compressed (Content-Encoding: gzip), unasked
  hang        never answers                           head      a plain 200 whose body is the request's head
  idle_close  a plain 200, then closes the connection while it waits for the next request (a keep-alive
              time-out)
  malformed   a head with two different Content-Length values (a request-smuggling shape), then its body

Every answer carries `x-connection`: how many connections the server had accepted when this one opened, so a
test sees whether its client reused one. Run: python tests/servers/raw_http.py [PORT [CERT KEY]] -> prints
"LISTENING <url>" (https with a certificate).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

try:
    from .process import ServerProcess
except ImportError:
    from process import ServerProcess

BODY = b'{"choices": [{"message": {"content": "ok"}}]}'


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            length = 0
            for line in head.decode("latin-1").split("\r\n")[1:]:
                if line.lower().startswith("content-length:"):
                    length = int(line.split(":", 1)[1])
            mode = json.loads(await reader.readexactly(length) or b"{}").get("mode", "plain")
            tag = f"x-connection: {number}\r\n".encode()
            if mode == "hang":
                await asyncio.sleep(3600)
            if mode == "continue":
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                await writer.drain()
                await asyncio.sleep(0.01)
            if mode == "chunked":
                half = len(BODY) // 2
                writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n" + tag + b"\r\n"
                             + f"{half:x};ext=1\r\n".encode() + BODY[:half] + b"\r\n")
                await writer.drain()
                await asyncio.sleep(0.01)  # the rest in a later read
                writer.write(f"{len(BODY) - half:x}\r\n".encode() + BODY[half:] + b"\r\n0\r\nx-trailer: 1\r\n\r\n")
            elif mode == "close":
                writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n" + tag + b"\r\n" + BODY)
                await writer.drain()
                writer.close()
                return
            elif mode == "malformed":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n" + tag + b"\r\nhello")
            elif mode == "cut":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n" + tag + b"\r\n" + BODY[:10])
                await writer.drain()
                writer.close()
                return
            else:
                body = head if mode == "head" else BODY
                if mode == "gzip":
                    import gzip

                    body = gzip.compress(body)
                    tag += b"Content-Encoding: gzip\r\n"
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: " + str(len(body)).encode() + b"\r\n" + tag
                             + b"\r\n" + body)
            await writer.drain()
            if mode == "idle_close":
                await asyncio.sleep(0.05)
                writer.close()
                return
    finally:
        writer.close()


def serve(port: int, cert: str | None = None, key: str | None = None) -> None:
    context = None
    if cert:
        import ssl

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)

    async def main():
        count = 0

        async def accepted(reader, writer):
            nonlocal count
            count += 1
            await handle(reader, writer, count)

        server = await asyncio.start_server(accepted, "127.0.0.1", port, ssl=context)
        print(f"LISTENING http{'s' if context else ''}://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
        await server.serve_forever()

    asyncio.run(main())


class RawHTTPServer(ServerProcess):
    """`tls`: (certificate file, key file) to serve https."""

    def __init__(self, tls: tuple[str, str] | None = None):
        self.process = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "0", *(tls or ())],
                                        stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        if not line.startswith("LISTENING "):
            self.process.kill()
            raise RuntimeError(f"raw HTTP server did not start: {line!r}")
        self.url = line.split()[1]


if __name__ == "__main__":
    serve(int(sys.argv[1]) if len(sys.argv) > 1 else 0, *sys.argv[2:4])
