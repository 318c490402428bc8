"""The calibration page in a real browser (headless Chromium, as tests/test_dashboard_browser.py drives it): the
project of tests/test_calibration_report.py, with reviews, served by `prefclean dashboard`. A screenshot lands
in the test's tmp_path."""

from __future__ import annotations

import pytest

from test_calibration_report import project  # noqa: F401  (the built project with reviews, a fixture)
from test_dashboard import start_dashboard, stop
from test_dashboard_browser import browser  # noqa: F401  (skips this module without chromium)

pytestmark = pytest.mark.browser
from selenium.webdriver.common.by import By  # noqa: E402


def test_the_calibration_page_draws_its_plots_with_the_stylesheet_and_no_script(project, browser, tmp_path):  # noqa: F811
    root, _, _ = project
    app = start_dashboard(root)
    try:
        browser.get(app.url + "calibration")
        assert browser.title.startswith("Calibration")
        curves = browser.find_elements(By.CSS_SELECTOR, "svg.curve")
        assert len(curves) == 4 and all(c.size["width"] > 200 and c.size["height"] > 100 for c in curves)
        points = browser.find_elements(By.CSS_SELECTOR, "svg.curve g.point circle")
        assert len(points) >= 4  # settings that keep the same pairs share one point
        assert len(browser.find_elements(By.CSS_SELECTOR, "g.kappa-row")) == 4
        # the stylesheet shades the confusion cells (the CSP lets only it style the page)
        darkest = browser.find_element(By.CSS_SELECTOR, "#confusion td.heat5")
        assert darkest.value_of_css_property("background-color") in ("rgba(47, 93, 138, 1)", "rgb(47, 93, 138)")
        assert browser.find_element(By.ID, "too-small").is_displayed()
        browser.find_element(By.LINK_TEXT, "Overview").click()
        browser.find_element(By.LINK_TEXT, "Calibration").click()
        assert browser.current_url.endswith("/calibration")
        assert browser.execute_script("return document.scripts.length") == 0
        browser.save_screenshot(str(tmp_path / "calibration.png"))
    finally:
        stop(app)
