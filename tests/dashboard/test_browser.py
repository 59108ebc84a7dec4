"""The board page in a real headless Chromium (Debian's ``chromium`` and ``chromium-driver``)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dashboard.conftest import XSS_SUBJECT

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
OUTPUT = Path(__file__).resolve().parents[1] / "output"  # gitignored, for review

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
        reason="/usr/bin/chromium and /usr/bin/chromedriver are not installed "
        "(scripts/install-test-deps.sh installs them)",
    ),
]

# the colours of dashboard.css: red, amber and green time-left cells
BACKGROUNDS = {
    "red": "rgb(185, 28, 28)",
    "amber": "rgb(180, 83, 9)",
    "green": "rgb(21, 128, 61)",
}


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium through chromedriver; nothing is downloaded."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1100",
        "--hide-scrollbars",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def board_rows(driver: Any) -> list[dict[str, str]]:
    """Number, colour attribute, computed background of the time-left cell, subject text."""
    rows: list[dict[str, str]] = driver.execute_script(
        """
        return [...document.querySelectorAll('#board-rows tr')].map(tr => ({
          number: tr.dataset.number,
          colour: tr.dataset.colour,
          background: getComputedStyle(tr.querySelector('td.left')).backgroundColor,
          subject: tr.querySelector('td.subject').textContent,
        }));
        """
    )
    return rows


def test_board_in_chromium(browser: Any, dashboard_url: str, tmp_path: Path) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser
    driver.get(dashboard_url + "/")
    WebDriverWait(driver, 20).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )

    def check(rows: list[dict[str, str]]) -> None:
        assert [r["number"] for r in rows[:2]] == ["10001", "10002"]
        assert [r["colour"] for r in rows] == ["red", "amber"] + ["green"] * 8
        for row in rows:
            assert row["background"] == BACKGROUNDS[row["colour"]]
        assert [r["subject"] for r in rows if r["subject"].startswith("<")] == [XSS_SUBJECT]

    check(board_rows(driver))
    # the page refreshes itself from /api/board (every second here): the rows are replaced
    driver.execute_script("document.querySelector('#board-rows tr').dataset.old = '1'")
    WebDriverWait(driver, 15).until(
        lambda d: d.execute_script("return !document.querySelector('#board-rows tr[data-old]')")
    )
    check(board_rows(driver))
    assert driver.execute_script("return document.getElementById('board-status').textContent") == ""
    # the XSS subject stayed text: no element from it, no alert
    assert (
        driver.execute_script(
            "return document.querySelectorAll('#board-rows b, #board-rows script').length"
        )
        == 0
    )
    assert driver.execute_script("return document.scripts.length") == 1
    # the four charts are drawn: SVGs with content and a visible size
    charts = driver.execute_script(
        """
        return [...document.querySelectorAll('svg.chart')].map(svg => ({
          shapes: svg.querySelectorAll('rect, line, text').length,
          width: svg.getBoundingClientRect().width,
          height: svg.getBoundingClientRect().height,
        }));
        """
    )
    assert len(charts) == 4
    assert all(c["shapes"] > 5 and c["width"] > 200 and c["height"] > 80 for c in charts)
    assert (
        driver.execute_script("return document.querySelectorAll('svg.chart rect.bar.p0').length")
        >= 1
    )
    errors = [entry for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")]
    assert errors == []
    shot = tmp_path / "dashboard.png"
    assert driver.save_screenshot(str(shot))
    OUTPUT.mkdir(exist_ok=True)
    shutil.copy(shot, OUTPUT / "dashboard.png")
