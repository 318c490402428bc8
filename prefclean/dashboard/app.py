"""The dashboard's web app: aiohttp routes that read the warehouse and render Jinja templates.

Safety: templates autoescape every value; pages carry no script at all and a Content-Security-Policy that
forbids scripts, so dataset text can never run; requests must name this host (no DNS rebinding) and
POSTs must come from our own pages; the warehouse is only ever opened read-only and locked down.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import jinja2
from aiohttp import web

from ..errors import PrefcleanError
from ..project import Project
from ..readonly import QueryRefused
from . import charts, queries
from .runs import NODE_H, NODE_W, TargetFiles, lineage

HERE = Path(__file__).parent
CSP = ("default-src 'none'; script-src 'none'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
PROJECT_KEY = web.AppKey("project", Project)
TEMPLATES_KEY = web.AppKey("templates", jinja2.Environment)
HOSTS_KEY = web.AppKey("hosts", frozenset)


def _number(value, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value) and float(value).is_integer()):
        return f"{int(value):,}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def _cell(value, limit: int = 1000) -> str:
    """A SQL result cell as DuckDB would print it, long text cut so a page of results stays small."""
    text = "NULL" if value is None else str(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _percent(part, whole) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "–"


def templates() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = _number
    env.filters["cell"] = _cell
    env.globals.update(percent=_percent, urlencode=urlencode)
    return env


def _page(request: web.Request, template: str, status: int = 200, **context) -> web.Response:
    env = request.app[TEMPLATES_KEY]
    project = request.app[PROJECT_KEY]
    html = env.get_template(template).render(project=project.name, path=request.path, **context)
    return web.Response(text=html, content_type="text/html", status=status)


async def _read(request: web.Request, work):
    """Run blocking warehouse work in a thread, with a fresh read-only connection."""
    project = request.app[PROJECT_KEY]

    def run():
        files = TargetFiles.load(project.target_dir)
        with queries.Reader.open(project.warehouse) as reader:
            return work(reader, files)

    return await asyncio.get_running_loop().run_in_executor(None, run)


def _missing(request: web.Request, template: str, exc: queries.Unavailable, **context) -> web.Response:
    """The page, with a notice instead of data: nothing built yet, or a build holds the warehouse."""
    files = TargetFiles.load(request.app[PROJECT_KEY].target_dir)
    return _page(request, template, missing=str(exc), busy=not isinstance(exc, queries.Missing),
                 build=files.build_status(), **context)


# ---- pages ----------------------------------------------------------------------------------------------

async def overview(request: web.Request) -> web.Response:
    try:
        data, files = await _read(request, lambda r, f: (queries.overview(r, f.audit_model), f))
    except queries.Unavailable as exc:
        return _missing(request, "overview.html", exc)
    return _page(request, "overview.html", build=files.build_status(), summary=data["summary"],
                 judges=data.get("judges"), this_run=(files.summary or {}).get("this_run"))


async def charts_page(request: web.Request) -> web.Response:
    try:
        data = await _read(request, lambda r, f: queries.chart_data(r, f.audit_model))
    except queries.Unavailable as exc:
        return _missing(request, "charts.html", exc)
    return _page(request, "charts.html", charts=charts.charts_for(data))


async def pairs(request: web.Request) -> web.Response:
    query = request.rel_url.query
    try:
        f = queries.PairFilter.from_query(query)
        limit = min(max(int(query.get("limit") or queries.PAGE_SIZE), 1), 1000)
    except ValueError:
        return _page(request, "pairs.html", status=400, error="limit must be a whole number", filters=query, page=None)
    except PrefcleanError as exc:
        return _page(request, "pairs.html", status=400, error=str(exc), filters=query, page=None)
    try:
        page = await _read(request, lambda r, files: queries.pairs_page(
            r, files.audit_model, f, after=query.get("after") or None, before=query.get("before") or None, limit=limit))
    except queries.Unavailable as exc:
        return _missing(request, "pairs.html", exc, filters=query, page=None)
    base = {k: v for k, v in query.items() if k not in ("after", "before") and v}
    return _page(request, "pairs.html", page=page, filters=query,
                 next_url=f"/pairs?{urlencode({**base, 'after': page.after})}" if page.after else None,
                 prev_url=f"/pairs?{urlencode({**base, 'before': page.before})}" if page.before else None)


async def pair(request: web.Request) -> web.Response:
    pair_id = request.match_info["pair_id"]
    try:
        detail = await _read(request, lambda r, f: queries.pair_detail(r, f.audit_model, pair_id))
    except queries.Unavailable as exc:
        return _missing(request, "pair.html", exc, pair=None)
    if detail is None:
        return _page(request, "pair.html", status=404, pair=None, not_found=pair_id)
    return _page(request, "pair.html", pair=detail)


async def lineage_page(request: web.Request) -> web.Response:
    files = TargetFiles.load(request.app[PROJECT_KEY].target_dir)
    graph = lineage(files)
    if graph is None:
        return _page(request, "lineage.html", graph=None, build=files.build_status(),
                     missing="no target/manifest.json yet")
    return _page(request, "lineage.html", graph=graph, build=files.build_status(), node_w=NODE_W, node_h=NODE_H)


async def sql(request: web.Request) -> web.Response:
    text, run = request.rel_url.query.get("q", ""), False
    if request.method == "POST":
        form = await request.post()
        text, run = str(form.get("q", "")), True
    context = {"q": text, "result": None, "error": None, "refused": False}
    if run and text.strip():
        from ..sqlshell import render_query

        project = request.app[PROJECT_KEY]
        try:
            sql_text = render_query(project, text)
            context["result"] = await _read(request, lambda r, f: queries.run_sql(r, sql_text))
        except QueryRefused as exc:
            context.update(error=str(exc), refused=True)
        except queries.Missing as exc:
            context.update(error=f"{exc}: run `prefclean build` first")
        except queries.Unavailable as exc:
            context.update(error=f"the warehouse is busy, try again when the build finishes ({exc})")
        except PrefcleanError as exc:
            context["error"] = str(exc)
    return _page(request, "sql.html", **context)


# ---- safety ---------------------------------------------------------------------------------------------

@web.middleware
async def guard(request: web.Request, handler):
    hosts = request.app[HOSTS_KEY]
    if hosts and request.host.lower() not in hosts:
        return web.Response(status=421, text=f"this dashboard answers only to {', '.join(sorted(hosts))}\n")
    origin = request.headers.get("Origin")
    if request.method == "POST" and origin and urlsplit(origin).netloc.lower() != request.host.lower():
        return web.Response(status=403, text="cross-site request refused\n")
    try:
        response = await handler(request)
    except PrefcleanError as exc:
        response = web.Response(status=500, text=f"error: {exc}\n")
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")  # "no-referrer" would send Origin: null
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def allowed_hosts(host: str, port: int) -> frozenset:
    """Names a browser may use to reach us; empty (no check) when bound to every interface."""
    if host in ("0.0.0.0", "::", ""):
        return frozenset()
    names = {"127.0.0.1", "localhost", "[::1]"} if host in ("127.0.0.1", "localhost", "::1") else {host}
    return frozenset(f"{name}:{port}".lower() for name in names) | (frozenset(names) if port == 80 else frozenset())


def create_app(project: Project, *, hosts: frozenset = frozenset()) -> web.Application:
    app = web.Application(middlewares=[guard])
    app[PROJECT_KEY] = project
    app[TEMPLATES_KEY] = templates()
    app[HOSTS_KEY] = hosts
    app.router.add_get("/", overview)
    app.router.add_get("/charts", charts_page)
    app.router.add_get("/pairs", pairs)
    app.router.add_get("/pairs/{pair_id}", pair)
    app.router.add_get("/lineage", lineage_page)
    app.router.add_get("/sql", sql)
    app.router.add_post("/sql", sql)
    app.router.add_static("/static", HERE / "static")
    return app

