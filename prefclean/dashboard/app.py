"""The dashboard's web app: aiohttp routes that read the warehouse and render Jinja templates.

Safety: templates autoescape every value; pages carry no script at all and a Content-Security-Policy that
forbids scripts, so dataset text can never run; who may ask is guard.py's (Host, Origin, token); the SQL box
is sqlbox.py's (sandboxed Jinja, its own threads, deadlines, capped results); the warehouse is only ever
opened read-only and locked down.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from urllib.parse import urlencode

import jinja2
from aiohttp import web

from ..errors import PrefcleanError
from ..project import Project
from ..readonly import QueryRefused
from ..calibration import VERDICTS
from . import calibration_charts, charts, queries
from .guard import Access, middleware
from .runs import NODE_H, NODE_W, TargetFiles, lineage
from .sqlbox import Busy, Limits, SqlBox

HERE = Path(__file__).parent
PROJECT_KEY = web.AppKey("project", Project)
TEMPLATES_KEY = web.AppKey("templates", jinja2.Environment)
SQL_BOX_KEY = web.AppKey("sql_box", SqlBox)


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
    html = env.get_template(template).render(project=project.name, path=request.path,
                                             limits=request.app[SQL_BOX_KEY].limits, **context)
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
                 judges=data.get("judges"), this_run=(files.summary or {}).get("this_run"),
                 calibration=(files.summary or {}).get("calibration"))


async def charts_page(request: web.Request) -> web.Response:
    try:
        data = await _read(request, lambda r, f: queries.chart_data(r, f.audit_model))
    except queries.Unavailable as exc:
        return _missing(request, "charts.html", exc)
    return _page(request, "charts.html", charts=charts.charts_for(data))


async def calibration_page(request: web.Request) -> web.Response:
    """The calibration report as the last build or `prefclean calibrate` wrote it into target/summary.json."""
    files = TargetFiles.load(request.app[PROJECT_KEY].target_dir)
    report = (files.summary or {}).get("calibration")
    if not report:
        return _page(request, "calibration.html", report=None)
    return _page(request, "calibration.html", report=report, verdicts=VERDICTS,
                 heat=calibration_charts.heat,
                 kp=calibration_charts.kappa_plot(report), value=calibration_charts.value,
                 curves=[calibration_charts.curve(name, sweep) for name, sweep in report["thresholds"].items()])


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
    box = request.app[SQL_BOX_KEY]
    text, run = request.rel_url.query.get("q", ""), False
    if request.method == "POST":
        try:
            form = await request.post()
        except web.HTTPException:  # e.g. 413: a body over the size limit
            raise
        except Exception as exc:  # a malformed urlencoded or multipart body: the client's mistake, not ours
            return _page(request, "sql.html", status=400, q="", result=None, refused=False,
                         error=f"could not read the form: {type(exc).__name__}: {exc}")
        field = form.get("q", "")
        if not isinstance(field, str):
            return _page(request, "sql.html", status=400, q="", result=None, refused=False,
                         error="the form field q must be text, not a file")
        text, run = field, True
    context = {"q": text, "result": None, "error": None, "refused": False}
    status = 200
    if len(text) > box.limits.max_query_chars:
        context.update(q=text[:box.limits.max_query_chars], error=f"a query may be at most "
                       f"{box.limits.max_query_chars:,} characters")
        return _page(request, "sql.html", status=400, **context)
    if run and text.strip():
        try:
            context["result"] = await box.run(text)
        except QueryRefused as exc:
            context.update(error=str(exc), refused=True)
        except Busy as exc:
            context["error"], status = str(exc), 503
        except queries.Missing as exc:
            context.update(error=f"{exc}: run `prefclean build` first")
        except queries.Unavailable as exc:
            context.update(error=f"the warehouse is busy, try again when the build finishes ({exc})")
        except PrefcleanError as exc:
            context["error"] = str(exc)
    return _page(request, "sql.html", status=status, **context)


def create_app(project: Project, *, hosts: frozenset, access: Access | None = None,
               limits: Limits = Limits()) -> web.Application:
    """The app; `hosts` are the Host values it answers to, `access` the token a non-loopback bind requires."""
    app = web.Application(middlewares=[middleware(hosts, access)])
    app[PROJECT_KEY] = project
    app[TEMPLATES_KEY] = templates()
    app[SQL_BOX_KEY] = box = SqlBox(project, limits)

    async def close_sql_box(_app) -> None:
        box.close()

    app.on_cleanup.append(close_sql_box)
    app.router.add_get("/", overview)
    app.router.add_get("/charts", charts_page)
    app.router.add_get("/pairs", pairs)
    app.router.add_get("/calibration", calibration_page)
    app.router.add_get("/pairs/{pair_id}", pair)
    app.router.add_get("/lineage", lineage_page)
    app.router.add_get("/sql", sql)
    app.router.add_post("/sql", sql)
    app.router.add_static("/static", HERE / "static")
    return app

