"""`prefclean dashboard`: a local web app over the warehouse, read-only, that works offline.

On loopback (the default) it answers to loopback names only. Bound to anything else it also requires a token,
generated at start and printed once in the link to open (guard.py).
"""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import Callable

from aiohttp import web

from ..errors import PrefcleanError
from ..project import Project
from .app import create_app
from .guard import Access, allowed_hosts, is_loopback
from .sqlbox import Limits

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


async def _serve(project: Project, sock: socket.socket, asked: str, echo: Callable[[str], None],
                 limits: Limits) -> None:
    host, port = sock.getsockname()[:2]
    access = None if is_loopback(host) else Access(port)
    hosts = allowed_hosts(host, port) | allowed_hosts(asked, port)  # `--host name.lan` answers to that name too
    app = create_app(project, hosts=hosts, access=access, limits=limits)
    runner = web.AppRunner(app, access_log=None)  # no access log: it would record the ?token= link
    await runner.setup()
    try:
        await web.SockSite(runner, sock).start()
        if access is None:
            shown = f"[{host}]" if ":" in host else host
            echo(f"prefclean dashboard for '{project.name}' at http://{shown}:{port}/ (Ctrl-C to stop)")
        else:
            name = socket.gethostname() if host in ("0.0.0.0", "::") else (f"[{asked}]" if ":" in asked else asked)
            echo(f"prefclean dashboard for '{project.name}' at http://{name}:{port}/?token={access.token} (Ctrl-C to stop)")
            echo(f"bound to {host}: reachable from other machines, so every request needs this token (shown only "
                 f"now); the link sets a cookie, scripts can send `Authorization: token ...`")
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def serve(project: Project, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          echo: Callable[[str], None] = print, query_timeout: float = Limits.seconds) -> None:
    """Serve until Ctrl-C. Binds 127.0.0.1 unless told otherwise: the warehouse may hold private data."""
    if not query_timeout > 0:
        raise PrefcleanError(f"--query-timeout {query_timeout:g}: give a number of seconds above 0")
    sock = _bind(host, port)
    try:
        asyncio.run(_serve(project, sock, host, echo, Limits(seconds=query_timeout)))
    except KeyboardInterrupt:
        echo("dashboard stopped")
