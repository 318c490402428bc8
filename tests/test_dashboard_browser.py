"""The dashboard in a real browser: Debian's headless Chromium driven by Selenium through chromedriver.

Serves the example project built against the fake judge (see test_dashboard.py) with `prefclean dashboard`.
Screenshots of every page land in the test's tmp_path.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.parse

import pytest

from test_dashboard import build_example, start_dashboard, stop

pytestmark = pytest.mark.browser

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
    pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
                allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import WebDriverException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    app = start_dashboard(build_example(tmp_path_factory.mktemp("dash")))
    yield app
    stop(app)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager look for drivers online
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 "--window-size=1300,1000", f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def text(driver, css: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, css).text


def test_every_page_renders_with_data(served, browser, tmp_path):
    pairs = served.query("select count(*) from pair_decisions")[0][0]
    pair_id = served.query("select min(pair_id) from pair_decisions")[0][0]
    results = json.loads((served.root / "target" / "run_results.json").read_text())["results"]
    built = sum(1 for r in results if r["status"] == "success")
    assert built >= 6
    checks = {
        "overview": ("", lambda: text(browser, "#pairs-count") == str(pairs)
                     and len(browser.find_elements(By.CSS_SELECTOR, "#reasons tbody tr")) >= 5),
        "charts": ("charts", lambda: len(browser.find_elements(By.CSS_SELECTOR, "figure.chart svg rect")) > 20),
        "pairs": ("pairs", lambda: len(browser.find_elements(By.CSS_SELECTOR, "#pairs-table tbody a.pair-link")) == pairs),
        "pair": (f"pairs/{pair_id}", lambda: pair_id in text(browser, "h1")
                 and text(browser, "#instruction") and text(browser, "#chosen pre") and text(browser, "#rejected pre")),
        "lineage": ("lineage", lambda: len(browser.find_elements(By.CSS_SELECTOR, "#lineage g.node.success")) == built),
        "sql": ("sql", lambda: browser.find_element(By.ID, "q").is_displayed()),
    }
    for name, (path, ok) in checks.items():
        browser.get(served.url + path)
        browser.save_screenshot(str(tmp_path / f"{name}.png"))
        assert ok(), f"page {name} did not render its data"
        assert "prefclean" in browser.title
    assert sorted(p.name for p in tmp_path.glob("*.png")) == sorted(f"{n}.png" for n in checks)


def test_a_filter_narrows_the_table(served, browser, tmp_path):
    browser.get(served.url + "pairs")
    before = len(browser.find_elements(By.CSS_SELECTOR, "#pairs-table tbody a.pair-link"))
    Select(browser.find_element(By.NAME, "decision")).select_by_visible_text("keep")
    browser.find_element(By.NAME, "chosen_min").send_keys("5")
    click_and_wait(browser, By.ID, "apply")
    rows = browser.find_elements(By.CSS_SELECTOR, "#pairs-table tbody tr")
    browser.save_screenshot(str(tmp_path / "pairs-filtered.png"))
    expected = served.query("select count(*) from pair_decisions where decision = 'keep' and chosen_rating >= 5")[0][0]
    assert 0 < len(rows) == expected < before
    assert all(r.find_elements(By.CSS_SELECTOR, "td.keep") for r in rows)
    assert "decision=keep" in browser.current_url


def test_pair_view_shows_both_rationales(served, browser, tmp_path):
    pair_id = served.query("select pair_id from pair_decisions where decision = 'keep' order by 1 limit 1")[0][0]
    browser.get(served.url + "pairs")
    click_and_wait(browser, By.CSS_SELECTOR, f'a[href="/pairs/{pair_id}"]')
    browser.save_screenshot(str(tmp_path / "pair.png"))
    for side in ("chosen", "rejected"):
        shown = [e.text for e in browser.find_elements(By.CSS_SELECTOR, f"#{side} .rationale")]
        stored = served.query(f"select judge, {side}_rationale from pair_ratings where pair_id = ? order by judge", [pair_id])
        assert len(shown) == len(stored) == 2
        for (judge, rationale), box in zip(stored, shown):
            assert box.startswith(judge) and rationale in box
    assert len(browser.find_elements(By.CSS_SELECTOR, "pre.raw-answer")) == 2


def click_and_wait(browser, by, value) -> None:
    """Click something that loads a new page, and wait until it has (a click returns before the load ends).

    The old page is marked with a window flag; the new page has none. Chromedriver's own staleness
    check can fail mid-navigation ("Node with given id does not belong to the document"), so any
    driver error while the page swaps is read as "not loaded yet".
    """
    browser.execute_script("window.__prefclean_old_page = true")
    browser.find_element(by, value).click()
    WebDriverWait(browser, 30, ignored_exceptions=(WebDriverException,)).until(
        lambda b: b.execute_script("return window.__prefclean_old_page === undefined"
                                   " && document.readyState === 'complete'"))


def run_sql(served, browser, sql: str) -> None:
    browser.get(served.url + "sql")
    box = browser.find_element(By.ID, "q")
    box.clear()
    box.send_keys(sql)
    click_and_wait(browser, By.ID, "run")


def test_sql_box_selects_and_refuses_writes(served, browser, tmp_path):
    run = lambda sql: run_sql(served, browser, sql)  # noqa: E731
    run("select pair_id, decision from cleaned_pairs order by pair_id")
    browser.save_screenshot(str(tmp_path / "sql-select.png"))
    rows = browser.find_elements(By.CSS_SELECTOR, "#sql-result tbody tr")
    assert len(rows) == served.query("select count(*) from cleaned_pairs")[0][0] > 0
    for statement in ("create table x as select 1", f"copy (select 1) to '{tmp_path / 'x.csv'}'"):
        run(statement)
        assert text(browser, "#sql-error").startswith("refused:"), statement
        assert not browser.find_elements(By.ID, "sql-result")
    browser.save_screenshot(str(tmp_path / "sql-refused.png"))
    assert not (tmp_path / "x.csv").exists()
    assert served.query("select count(*) from information_schema.tables where table_name = 'x'")[0][0] == 0


def test_script_in_a_response_does_not_run(served, browser, tmp_path):
    pair_id = served.query("select pair_id from pair_decisions where instruction like 'Say hello%'")[0][0]
    for path in (f"pairs/{pair_id}", "pairs?" + urllib.parse.urlencode({"q": "pwned"}), None):
        if path is None:  # the same text as a SQL result
            run_sql(served, browser, "select instruction, chosen, rejected from pair_decisions where chosen like '%<script>%'")
            assert len(browser.find_elements(By.CSS_SELECTOR, "#sql-result tbody tr")) == 1
        else:
            browser.get(served.url + path)
        assert browser.execute_script("return window.__pwned") is None, path
        assert "pwned" not in browser.title, path
    browser.get(served.url + f"pairs/{pair_id}")
    browser.save_screenshot(str(tmp_path / "pair-with-script.png"))
    assert "<script>window.__pwned=1;document.title='pwned'</script>" in text(browser, "#chosen pre")
    assert '<img src=x onerror="window.__pwned=2' in text(browser, "#rejected pre")
    assert not browser.find_elements(By.CSS_SELECTOR, "main script, main img")
