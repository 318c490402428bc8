"""`prefclean dashboard` over HTTP: the example project built against the fake judge, served by the real CLI.

The rows are written so the build yields every kind of decision: kept, judge prefers rejected, judges disagree
(a per-model marker), position bias (unmarked texts rated by position), a judge failure (an unparseable answer)
and a pair whose texts carry <script> and <img onerror> to prove they are shown, not run.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from judge_fixtures import EXAMPLE_DIR, copy_example, judge_config
from servers.fake_judge import FakeJudge

XSS_CHOSEN = "Hello! <script>window.__pwned=1;document.title='pwned'</script> [[rate=5]]"
XSS_REJECTED = "<img src=x onerror=\"window.__pwned=2;document.title='pwned'\"> bye [[rate=1]]"
GARBAGE = "GARBAGE-ANSWER"


def dataset_rows(n: int = 16) -> list[dict]:
    sample = [json.loads(line) for line in (EXAMPLE_DIR / "data" / "orca_sample.jsonl").read_text().splitlines()[:n]]
    rows = []
    for i, r in enumerate(sample):
        chosen, rejected = r["chosen"], r["rejected"]
        marks = [(" [[rate=5]]", " [[rate=2]]"),  # keep
                 (" [[rate=2]]", " [[rate=4]]"),  # the judge prefers rejected
                 (" [[rate:fake-beta=1]] [[rate=4]]", " [[rate=3]]"),  # the two judges disagree
                 ("", "")][i % 4]  # unmarked: rated by position, so the verdict flips when swapped
        rows.append({"system": r.get("system") or "", "instruction": r["question"],
                     "chosen": chosen + marks[0], "rejected": rejected + marks[1]})
    rows.append({"system": "", "instruction": "Say hello <script>window.__pwned=1</script>",
                 "chosen": XSS_CHOSEN, "rejected": XSS_REJECTED})
    rows.append({"system": "", "instruction": f"{GARBAGE}: what is 2+2?", "chosen": "4 [[rate=5]]", "rejected": "5 [[rate=1]]"})
    return rows


@dataclass
class Served:
    url: str
    root: Path
    process: subprocess.Popen
    started: str = ""  # the line it printed at start

    def get(self, path: str, **headers) -> tuple[int, str, dict]:
        return http(self.url + path.lstrip("/"), headers=headers)

    def post(self, path: str, form: dict, **headers) -> tuple[int, str, dict]:
        return http(self.url + path.lstrip("/"), data=urllib.parse.urlencode(form).encode(), headers=headers)

    def query(self, sql: str, params=None) -> list[tuple]:
        con = duckdb.connect(str(self.root / "target" / "prefclean.duckdb"), read_only=True)
        try:
            return con.execute(sql, params or []).fetchall()
        finally:
            con.close()


def http(url: str, data: bytes | None = None, headers: dict | None = None) -> tuple[int, str, dict]:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, resp.read().decode("utf-8"), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8"), dict(exc.headers)


def cli(*args: str, cwd: Path | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "prefclean.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300, **kwargs)


def start_dashboard(root: Path, *extra: str) -> Served:
    """`prefclean dashboard --port 0` as a subprocess; the URL is read from the line it prints."""
    process = subprocess.Popen([sys.executable, "-m", "prefclean.cli", "dashboard", "--port", "0",
                                "--project-dir", str(root), *extra],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    line = process.stdout.readline()
    match = re.search(r"http://\S+/", line)
    if not match:
        process.kill()
        raise RuntimeError(f"dashboard did not start: {line!r} {process.stdout.read()}")
    return Served(match.group(0), root, process, line)


def stop(served: Served) -> None:
    served.process.terminate()
    try:
        served.process.wait(10)
    except subprocess.TimeoutExpired:
        served.process.kill()


def build_example(base: Path) -> Path:
    """The example project on the given rows, judged by a panel of two fake judges, built for real."""
    with FakeJudge() as judge:
        judge.control(position_ratings=[5, 2], garbage_if_contains=GARBAGE)
        root = copy_example(base, judge, rows=dataset_rows(), vars={"judges": ["fake", "beta"]},
                            extra_judges={"beta": judge_config(judge, model="fake-beta")})
        done = cli("build", "--project-dir", str(root))
    assert done.returncode == 0, done.stdout + done.stderr
    return root


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = build_example(tmp_path_factory.mktemp("dash"))
    app = start_dashboard(root)
    yield app
    stop(app)


def pair_ids(html: str) -> list[str]:
    return re.findall(r'href="/pairs/([0-9a-f]+)"', html)


def total(html: str) -> int:
    return int(re.search(r'<p id="total"><strong>([\d,]+)</strong>', html).group(1).replace(",", ""))


# ---- pages ----------------------------------------------------------------------------------------------

def test_overview_shows_counts_reasons_judges_and_build(served):
    status, html, headers = served.get("/")
    assert status == 200
    pairs = served.query("select count(*) from pair_decisions")[0][0]
    assert f'<span class="big" id="pairs-count">{pairs}</span>' in html
    for reason, n in served.query("select reason, count(*) from pair_decisions group by 1"):
        assert re.search(rf">{re.escape(reason)}</a></td>\s*<td class=\"n\">{n}</td>", html), reason
    assert {"judge_agrees", "judge_prefers_rejected", "judges_disagree", "position_bias", "judge_failed"} <= \
        {r for (r,) in served.query("select distinct reason from pair_decisions")}
    assert "fake-beta" in html and "judge failures" in html
    assert "<strong>OK</strong>" in html and "prefclean build</code> run" in html
    assert "script-src 'none'" in headers["Content-Security-Policy"]


def test_charts_draw_every_chart(served):
    status, html, _ = served.get("/charts")
    assert status == 200
    for title in ("Ratings: chosen vs rejected — judge fake", "Ratings: chosen vs rejected — judge beta",
                  "Margin (chosen − rejected", "Decisions by reason", "Position bias", "Mean rating by judge"):
        assert title in html
    assert html.count("<svg") >= 6 and "no data" not in html
    # the bars carry the counts: the chosen 5s of judge fake equal the warehouse's count
    fives = served.query("select count(*) from pair_ratings where judge = 'fake' and chosen_rating = 5")[0][0]
    assert f"<title>5: {fives} (chosen)</title>" in html


def test_pairs_table_filters_narrow_the_rows(served):
    everything = total(served.get("/pairs")[1])
    assert everything == served.query("select count(*) from pair_decisions")[0][0]
    _, html, _ = served.get("/pairs?decision=keep")
    kept = served.query("select pair_id from pair_decisions where decision = 'keep' order by 1")
    assert 0 < total(html) == len(kept) < everything
    assert pair_ids(html) == [k for (k,) in kept]
    _, html, _ = served.get("/pairs?q=pwned")
    assert total(html) == 1
    _, html, _ = served.get("/pairs?chosen_min=4.5&rejected_max=2")
    expected = served.query("select count(*) from pair_decisions where chosen_rating >= 4.5 and rejected_rating <= 2")[0][0]
    assert total(html) == expected > 0
    # by judge: the ratings are that judge's (beta rated the disagreeing pairs' chosen 1)
    _, html, _ = served.get("/pairs?judge=beta&chosen_max=1")
    expected = served.query("select count(*) from pair_ratings where judge = 'beta' and chosen_rating <= 1")[0][0]
    assert total(html) == expected > 0
    _, html, _ = served.get("/pairs?failed=1")
    assert total(html) == 1 and GARBAGE in html
    status, html, _ = served.get("/pairs?chosen_min=lots")
    assert status == 400 and "chosen_min" in html


def test_keyset_paging_walks_every_pair_once(served):
    seen, url, pages = [], "/pairs?limit=5", []
    while url:
        _, html, _ = served.get(url.replace("&amp;", "&"))
        ids = pair_ids(html)
        pages.append((url, ids))
        seen += ids
        m = re.search(r'<a href="([^"]+)" id="next">', html)
        url = m.group(1) if m else None
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == served.query("select count(*) from pair_decisions")[0][0]
    # "previous" from the last page gives back the page before it
    _, html, _ = served.get(pages[-1][0].replace("&amp;", "&"))
    prev = re.search(r'<a href="([^"]+)" id="prev">', html).group(1).replace("&amp;", "&")
    assert pair_ids(served.get(prev)[1]) == pages[-2][1]


def test_pair_view_shows_both_responses_rationales_and_raw_answers(served):
    pair_id, instruction = served.query("select pair_id, instruction from pair_decisions where decision = 'keep' "
                                        "and instruction not like '%<%' order by pair_id limit 1")[0]
    status, html, _ = served.get(f"/pairs/{pair_id}")
    assert status == 200
    assert 'id="chosen"' in html and 'id="rejected"' in html
    for judge in ("fake", "beta"):
        rationales = served.query("select chosen_rationale, rejected_rationale, raw from pair_ratings "
                                  "where pair_id = ? and judge = ?", [pair_id, judge])[0]
        for text in rationales:
            assert text and _escaped(text) in html
    assert _escaped(instruction) in html


def test_dataset_html_is_escaped_not_rendered(served):
    pair_id = served.query("select pair_id from pair_decisions where instruction like 'Say hello%'")[0][0]
    for path in (f"/pairs/{pair_id}", "/pairs?q=pwned"):
        _, html, _ = served.get(path)
        assert "<script>window" not in html and "<img src=x" not in html
        assert "&lt;script&gt;window.__pwned=1" in html
    assert "&lt;img src=x onerror=" in served.get(f"/pairs/{pair_id}")[1]
    status, _, _ = served.get("/pairs/not-a-pair")
    assert status == 404


def test_lineage_lists_models_with_status_and_rows(served):
    status, html, _ = served.get("/lineage")
    assert status == 200 and '<svg id="lineage"' in html
    results = json.loads((served.root / "target" / "run_results.json").read_text())["results"]
    for r in results:
        assert re.search(rf">{r['model']}</a></td><td>{r['materialized']}</td><td class=\"success\">success</td>\s*"
                         rf"<td class=\"n\">{r['rows']:,}</td>", html), r["model"]
    assert html.count('class="edge"') == sum(1 for _ in _edges(served.root))


def _edges(root: Path):
    manifest = json.loads((root / "target" / "manifest.json").read_text())
    for m in manifest["models"].values():
        yield from m["depends_on"]["models"] + m["depends_on"]["sources"]


# ---- the SQL box ----------------------------------------------------------------------------------------

def test_sql_box_runs_selects_and_refs(served):
    status, html, _ = served.post("/sql", {"q": "select decision, count(*) as n from {{ ref('pair_decisions') }} group by 1 order by 1"})
    assert status == 200 and 'id="sql-result"' in html
    for decision, n in served.query("select decision, count(*) from pair_decisions group by 1"):
        assert f"<td class=\"cell\">{decision}</td><td class=\"cell\">{n}</td>" in html
    _, html, _ = served.get("/sql?" + urllib.parse.urlencode({"q": "select 42"}))
    assert "select 42</textarea>" in html and 'id="sql-result"' not in html  # a link only fills the box


@pytest.mark.parametrize("statement", [
    "create table x as select 1",
    "insert into cleaned_pairs (pair_id) values ('x')",
    "copy (select 1) to '{tmp}/leak.csv'",
    "select * from read_csv('/etc/passwd')",
    "attach '{tmp}/other.duckdb' as other",
    "set enable_external_access = true",
    "set memory_limit = '100GB'",
    "install httpfs",
    "select * from glob('/etc/*')",
    "export database '{tmp}/dump'",
])
def test_sql_box_refuses_writes_files_and_attach(served, tmp_path, statement):
    status, html, _ = served.post("/sql", {"q": statement.format(tmp=tmp_path)})
    assert status == 200
    assert re.search(r'<p class="error refused" id="sql-error">refused: ', html), html[-2000:]
    assert not list(tmp_path.iterdir())
    assert served.query("select count(*) from information_schema.tables where table_name = 'x'")[0][0] == 0


def test_sql_box_duckdb_has_its_own_memory_and_temp_disk_caps(served):
    _, html, _ = served.post("/sql", {"q": "select current_setting('memory_limit') as m, "
                                            "current_setting('max_temp_directory_size') as t"})
    assert '<td class="cell">3.7 GiB</td><td class="cell">3.7 GiB</td>' in html


def test_sql_box_reports_plain_errors(served):
    _, html, _ = served.post("/sql", {"q": "select * from no_such_table"})
    assert 'id="sql-error"' in html and "no_such_table" in html and "refused" not in html


# ---- safety of the server -------------------------------------------------------------------------------

def test_foreign_host_and_cross_site_post_are_refused(served):
    status, _, _ = served.get("/", Host="evil.example:80")
    assert status == 421
    status, _, _ = served.post("/sql", {"q": "select 1"}, Origin="http://evil.example")
    assert status == 403
    port = urllib.parse.urlsplit(served.url).port
    assert served.get("/", Host=f"localhost:{port}")[0] == 200


def test_static_assets_ship_with_the_package(served):
    status, css, headers = served.get("/static/style.css")
    assert status == 200 and "text/css" in headers["Content-Type"]
    _, html, _ = served.get("/")
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing loaded from elsewhere
    assert "@import" not in css and "url(http" not in css


# ---- before a build -------------------------------------------------------------------------------------

def test_pages_say_run_build_when_nothing_is_built(tmp_path):
    root = tmp_path / "empty"
    root.mkdir()
    (root / "prefclean.yml").write_text("name: empty\n")
    app = start_dashboard(root)
    try:
        for path in ("/", "/charts", "/pairs", "/lineage"):
            status, html, _ = app.get(path)
            assert status == 200 and 'id="missing"' in html and "prefclean build" in html, path
        _, html, _ = app.post("/sql", {"q": "select 1"})
        assert "run `prefclean build` first" in html
    finally:
        stop(app)


def test_a_build_holding_the_warehouse_gives_a_busy_notice_not_an_error(served):
    writer = duckdb.connect(str(served.root / "target" / "prefclean.duckdb"))  # what a running build holds
    try:
        status, html, _ = served.get("/pairs")
        assert status == 200 and 'id="busy"' in html and "reload this page when it finishes" in html
        _, html, _ = served.post("/sql", {"q": "select 1"})
        assert "the warehouse is busy" in html
    finally:
        writer.close()
    assert total(served.get("/pairs")[1]) > 0  # the lock is never held between requests


def test_port_in_use_is_one_clear_line(tmp_path):
    (tmp_path / "prefclean.yml").write_text("name: p\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = cli("dashboard", "--port", str(port), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"error: port {port} on 127.0.0.1 is in use: pick another with --port"]


def _escaped(text: str) -> str:
    from markupsafe import escape

    return str(escape(text))


# ---- the SQL box under attack ---------------------------------------------------------------------------

def test_sql_box_jinja_cannot_run_commands(served, tmp_path):
    from test_sql import _ssti_payloads

    marker = tmp_path / "pwned"
    for payload in _ssti_payloads(marker):
        status, html, _ = served.post("/sql", {"q": payload})
        assert status == 200 and 'id="sql-error"' in html and 'id="sql-result"' not in html, payload
        assert not marker.exists(), payload
    _, html, _ = served.post("/sql", {"q": "select '{{ cycler.__init__.__globals__.os.popen(\"id\").read() }}'"})
    assert re.search(r'<p class="error refused" id="sql-error">refused: the query&#39;s Jinja tried something', html)
    assert "uid=" not in html


def test_a_slow_template_does_not_freeze_the_pages(served):
    import threading

    endless = "select {% for a in 'x' * 100000 %}{% for b in 'y' * 100000 %}{% endfor %}{% endfor %} 1"
    answers: list = []
    started = time.monotonic()
    worker = threading.Thread(target=lambda: answers.append(served.post("/sql", {"q": endless})))
    worker.start()
    time.sleep(0.5)
    for _ in range(3):  # the event loop answers while the template spins in its sandbox process
        t = time.monotonic()
        assert served.get("/")[0] == 200
        assert time.monotonic() - t < 2.5
    worker.join(60)
    status, html, _ = answers[0]
    assert status == 200 and "took longer than 5s to render" in html and time.monotonic() - started < 30
    # the pre-sandbox payload of the report: range() is not in scope, so it fails at once
    t = time.monotonic()
    _, html, _ = served.post("/sql", {"q": "select {{ range(400000000)|sum }}"})
    assert "&#39;range&#39; is undefined" in html and time.monotonic() - t < 5


def test_results_are_capped_in_rows_columns_and_size(served):
    _, html, _ = served.post("/sql", {"q": "select range as n, repeat('x', 5000) as big from range(100000)"})
    assert html.count("<tr><td") == 500
    assert "the first 500 rows are shown: the query returned more" in html and 'id="sql-truncated"' in html
    cells = re.findall(r'<td class="cell">(x+…?)</td>', html)
    assert cells and all(len(c) == 1001 and c.endswith("…") for c in cells)  # 1,000 characters and a mark
    wide = ", ".join(f"{i} as c{i}" for i in range(150))
    _, html, _ = served.post("/sql", {"q": f"select {wide}"})
    assert "the first 100 of 150 columns are shown" in html and html.count("<th>") == 100
    heavy = ", ".join(f"repeat('{c}', 2000) as {c}" for c in "abcdefghij")  # 10 x 1,000 shown characters a row
    status, html, _ = served.post("/sql", {"q": f"select {heavy} from range(1000)"})
    shown = html.count("<tr><td")
    assert status == 200 and 0 < shown < 500 and "larger than 2,000,000 characters" in html
    assert len(html) < 3_000_000
    _, html, _ = served.post("/sql", {"q": "select 1 as one"})
    assert 'id="sql-truncated"' not in html


def _raw_post(served: Served, path: str, body: bytes, content_type: str) -> tuple[int, str]:
    import http.client

    parts = urllib.parse.urlsplit(served.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": content_type})
        resp = conn.getresponse()
        return resp.status, resp.read().decode("utf-8", "replace")
    finally:
        conn.close()


def test_malformed_form_bodies_get_a_400_not_a_500(served):
    app = start_dashboard(served.root)
    try:
        cases = [
            (b"garbage", "multipart/form-data"),  # no boundary
            (b"garbage", "multipart/form-data; boundary=xyz"),  # no boundary in the body
            (b'--xyz\r\nContent-Disposition: form-data; name="q"\r\n\r\nselect 1', "multipart/form-data; boundary=xyz"),
            (b'--xyz\r\nContent-Disposition: form-data; name="q"; filename="a.sql"\r\n\r\nselect 1\r\n--xyz--\r\n',
             "multipart/form-data; boundary=xyz"),  # q as a file
        ]
        for body, content_type in cases:
            status, html = _raw_post(app, "/sql", body, content_type)
            assert status == 400, (body, status, html[-500:])
            assert 'id="sql-error"' in html and ("could not read the form" in html or "must be text" in html), body
        ok = b'--xyz\r\nContent-Disposition: form-data; name="q"\r\n\r\nselect 6 * 7 as answer\r\n--xyz--\r\n'
        status, html = _raw_post(app, "/sql", ok, "multipart/form-data; boundary=xyz")
        assert status == 200 and '<td class="cell">42</td>' in html
    finally:
        stop(app)
    rest = app.process.stdout.read()
    assert "Traceback" not in rest and "Error handling request" not in rest, rest


# ---- a dashboard others can reach ----------------------------------------------------------------------

def _request(url: str, method: str = "GET", body: bytes | None = None, **headers) -> tuple[int, str, dict]:
    """One request, redirects not followed, so the token's redirect and cookie can be seen."""
    import http.client

    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        if body is not None:
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read().decode("utf-8", "replace"), {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


def test_a_non_loopback_bind_requires_the_token(served):
    app = start_dashboard(served.root, "--host", "0.0.0.0")
    try:
        port, token = re.search(r":(\d+)/\?token=([\w-]+) ", app.started).groups()
        assert "every request needs this token" in app.process.stdout.readline()  # the second line says why
        base = f"http://127.0.0.1:{port}"
        form = urllib.parse.urlencode({"q": "select 42 as answer"}).encode()
        for path in ("/", "/pairs", "/sql", "/static/style.css", "/?token=wrong"):
            assert _request(base + path)[0] == 401, path
        assert _request(base + "/sql", "POST", form)[0] == 401
        assert _request(base + "/", Authorization="token wrong")[0] == 401
        # the link: a cookie, then a redirect to the same page without the token in the URL
        status, _, headers = _request(f"{base}/pairs?decision=keep&token={token}")
        assert status == 303 and headers["location"] == "/pairs?decision=keep"
        cookie = headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and token not in cookie
        jar = cookie.split(";")[0]
        assert _request(base + "/pairs?decision=keep", Cookie=jar)[0] == 200
        status, _, headers = _request(f"{base}//evil.example/?token={token}")
        assert status == 303 and headers["location"] == "/evil.example/"  # the redirect stays on this site
        for sneaky in ("%09", "%0a", "%5c", "%2f"):  # browsers drop tabs and line breaks from a URL: `/\t/x` is `//x`
            status, _, headers = _request(f"{base}/{sneaky}/evil.example/?token={token}")
            assert status == 303 and headers["location"] == f"/{sneaky}/evil.example/"  # kept encoded, so a path
        status, html, _ = _request(base + "/sql", "POST", form, Cookie=jar, Origin=base)
        assert status == 200 and '<td class="cell">42</td>' in html
        for scheme in ("token", "Bearer"):
            assert _request(base + "/", Authorization=f"{scheme} {token}")[0] == 200
        # the token does not switch off the Host and Origin checks
        assert _request(base + "/", Host=f"evil.example:{port}", Authorization=f"token {token}")[0] == 421
        assert _request(base + "/sql", "POST", form, Cookie=jar, Origin="http://evil.example")[0] == 403
    finally:
        stop(app)
    assert token not in app.process.stdout.read()  # printed once, at start, never logged


def test_concurrent_queries_each_stop_at_their_deadline_and_pages_still_answer(served):
    from concurrent.futures import ThreadPoolExecutor

    app = start_dashboard(served.root, "--query-timeout", "3")
    endless = "select count(*) from range(1000000000000) t1"
    try:
        def slow():
            t = time.monotonic()
            status, html, _ = app.post("/sql", {"q": endless})
            return status, html, time.monotonic() - t

        with ThreadPoolExecutor(6) as pool:
            started = time.monotonic()
            running = [pool.submit(slow) for _ in range(6)]
            time.sleep(1)
            for _ in range(3):
                t = time.monotonic()
                assert app.get("/")[0] == 200
                assert time.monotonic() - t < 3, "a page waited for the SQL box's queries"
            answers = [f.result(timeout=60) for f in running]
        assert time.monotonic() - started < 25
        stopped = [a for a in answers if a[0] == 200 and "query stopped at its time limit (3s)" in a[1]]
        busy = [a for a in answers if a[0] == 503 and "the SQL box is already running 2 queries" in a[1]]
        assert len(stopped) >= 2 and len(stopped) + len(busy) == 6, [a[1][-300:] for a in answers]
        assert all(seconds < 3 + 5 + 3 + 5 for _, _, seconds in stopped)  # its wait for a slot, then its 3 s
    finally:
        stop(app)


def test_a_build_while_a_dashboard_query_runs_says_the_dashboard_holds_the_warehouse(make_project):
    import threading

    root = make_project(models={"m": "{{ config(materialized='table') }} select 1 as x"})
    assert cli("build", "--project-dir", str(root)).returncode == 0
    app = start_dashboard(root, "--query-timeout", "20")  # the build below starts within it, also on a busy machine
    try:
        worker = threading.Thread(target=app.post, args=("/sql", {"q": "select count(*) from range(1000000000000) t1"}))
        worker.start()
        _wait_until_open(app.process.pid, root / "target" / "prefclean.duckdb")
        done = cli("build", "--project-dir", str(root))
        worker.join(30)
    finally:
        stop(app)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"the dashboard (`prefclean dashboard`, PID {app.process.pid}) is running a query on it" in done.stderr
    assert "time limit, 20 s" in done.stderr


def _wait_until_open(pid: int, path: Path, timeout: float = 20) -> None:
    fds = Path(f"/proc/{pid}/fd")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if any(os.readlink(fd) == str(path) for fd in fds.iterdir()):
                return
        except OSError:
            pass
        time.sleep(0.05)
    pytest.fail(f"the dashboard never opened {path}")
