"""Who may talk to the dashboard: the Host and Origin checks, and the token a non-loopback bind requires.

- Host: a request must name this server (a loopback name, or one of this machine's names and addresses when
  bound to every interface), so a DNS-rebinding page cannot read it through the victim's browser.
- Origin: a POST must come from our own pages (CSRF).
- Token: bound to anything but loopback, every request needs the token printed at start (as Jupyter does):
  `?token=` once, which sets a cookie (SameSite=Strict, HttpOnly) and redirects to the URL without it, or an
  `Authorization: token ...` / `Bearer ...` header. The cookie holds a separate random value, not the token.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import socket
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from ..errors import PrefcleanError

CSP = ("default-src 'none'; script-src 'none'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _machine_names() -> set[str]:
    """This machine's names and the addresses they and the default route resolve to (no packet is sent)."""
    names = {"127.0.0.1", "localhost", "::1", socket.gethostname(), socket.getfqdn()}
    for name in list(names):
        try:
            names |= {info[4][0] for info in socket.getaddrinfo(name, None)}
        except OSError:
            pass
    for family, probe in ((socket.AF_INET, "10.255.255.255"), (socket.AF_INET6, "fd00::1")):
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.connect((probe, 1))
                names.add(s.getsockname()[0])
        except OSError:
            pass
    return {n.split("%")[0] for n in names if n}


def allowed_hosts(host: str, port: int) -> frozenset:
    """The Host header values a browser may send to reach us (never empty: the check is always on)."""
    if host in ("0.0.0.0", "::", ""):
        names = _machine_names()
    elif is_loopback(host):
        names = {"127.0.0.1", "localhost", "::1", host}
    else:
        names = {host}
    shown = {f"[{n}]" if ":" in n else n for n in names}
    return frozenset(f"{n}:{port}".lower() for n in shown) | (frozenset(n.lower() for n in shown) if port == 80 else frozenset())


@dataclass
class Access:
    """The token a non-loopback dashboard requires, and the cookie value that stands for it once given."""

    port: int
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    session: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    @property
    def cookie(self) -> str:
        return f"prefclean_dashboard_{self.port}"  # one per port: two dashboards on one host stay apart

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() in ("token", "bearer") and hmac.compare_digest(value.strip().encode(), self.token.encode()):
            return True
        cookie = request.cookies.get(self.cookie, "")
        return bool(cookie) and hmac.compare_digest(cookie.encode(), self.session.encode())

    def check(self, request: web.Request) -> web.StreamResponse | None:
        """None when the request may go on; otherwise the answer to send (a redirect setting the cookie, or 401)."""
        if self._authorized(request):
            return None
        given = request.rel_url.query.get("token")
        if given is not None and request.method == "GET" and hmac.compare_digest(given.encode(), self.token.encode()):
            rest = [(k, v) for k, v in request.rel_url.query.items() if k != "token"]
            # never `//elsewhere` (that would leave this site); the raw, still-encoded path, since a browser drops
            # a decoded tab or line break from a URL (`/\t/elsewhere` is `//elsewhere`) and aiohttp refuses CR/LF
            path = "/" + request.rel_url.raw_path.lstrip("/\\")
            response = web.Response(status=303, headers={"Location": path + (f"?{urlencode(rest)}" if rest else "")})
            response.set_cookie(self.cookie, self.session, httponly=True, samesite="Strict", path="/")
            return response
        return web.Response(status=401, text="this dashboard needs its token: open the link it printed when it "
                                             "started (http://HOST:PORT/?token=...)\n")


def middleware(hosts: frozenset, access: Access | None):
    @web.middleware
    async def guard(request: web.Request, handler):
        if request.host.lower() not in hosts:
            return web.Response(status=421, text=f"this dashboard answers only to {', '.join(sorted(hosts))}\n")
        origin = request.headers.get("Origin")
        if request.method == "POST" and origin and urlsplit(origin).netloc.lower() != request.host.lower():
            return web.Response(status=403, text="cross-site request refused\n")
        if access is not None:
            refusal = access.check(request)
            if refusal is not None:
                _harden(refusal)
                return refusal
        try:
            response = await handler(request)
        except PrefcleanError as exc:
            response = web.Response(status=500, text=f"error: {exc}\n")
        _harden(response)
        return response

    return guard


def _harden(response: web.StreamResponse) -> None:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")  # "no-referrer" would send Origin: null
    response.headers.setdefault("Cache-Control", "no-store")
