"""`prefclean dashboard`: a local web app over the warehouse, read-only, that works offline."""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import Callable

from aiohttp import web

from ..errors import PrefcleanError
from ..project import Project
from .app import allowed_hosts, create_app

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8765


def _bind(host: str, port: int) -> socket.socket:
    """Bind ourselves so `--port 0` picks a free port and the real one can be printed."""
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise PrefcleanError(f"--host {host}: cannot resolve it ({exc.strerror})") from None
    sock = socket.socket(info[0], socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(info[4])
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PrefcleanError(f"port {port} on {host} is in use: pick another with --port") from None
        raise PrefcleanError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


async def _serve(project: Project, sock: socket.socket, echo: Callable[[str], None]) -> None:
    host, port = sock.getsockname()[:2]
    app = create_app(project, hosts=allowed_hosts(host if host not in ("::", "0.0.0.0") else "", port))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.SockSite(runner, sock).start()
        shown = f"[{host}]" if ":" in host else host
        echo(f"prefclean dashboard for '{project.name}' at http://{shown}:{port}/ (Ctrl-C to stop)")
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def serve(project: Project, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          echo: Callable[[str], None] = print) -> None:
    """Serve until Ctrl-C. Binds 127.0.0.1 unless told otherwise: the warehouse may hold private data."""
    sock = _bind(host, port)
    try:
        asyncio.run(_serve(project, sock, echo))
    except KeyboardInterrupt:
        echo("dashboard stopped")
