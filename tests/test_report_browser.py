"""report.html as a person reads it, in a real browser: headless Chromium (Debian's `chromium`)
driven by Selenium through chromedriver (Debian's `chromium-driver`, built from the same source as
the browser, so their versions always match; nothing is downloaded at run time).

What is checked: the verdict counts at the top are claims.json's, a failed claim's diagnostics open
when clicked, the timeline has a bar per module, the page logs no console error, and it reads at a
phone's width (390 px: no sideways scrolling, the first failure in the first screen) and at 1400 px.
A screenshot at each width is kept: `.clusterproof/screenshots/` for the recorded page, or the run's
`artifacts/screenshots/` (CI uploads both).

Pages: the recorded failing run (tests/data/report/failures: failed and errored claims with
diagnostics, eight modules) and, when CLUSTERPROOF_REPORT_RUN names a run's directory, that run's own
page (.ci/run: the e2e run's). Skipped, saying so, where Chromium, chromedriver or Selenium is
missing; under CI (CI set) that fails instead: CI installs them (scripts/bootstrap.sh --browser).
"""

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from clusterproof.report import PAGE
from clusterproof.report.page import write

DATA = Path(__file__).parent / "data" / "report"
ROOT = Path(__file__).resolve().parents[1]
PHONE, DESKTOP = (390, 844), (1400, 900)
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
BROWSER = next((b for b in map(shutil.which, BROWSERS) if b), None)
# Debian's chromium-driver; GitHub's runner images name theirs in CHROMEWEBDRIVER
DRIVER = shutil.which("chromedriver") or next(
    (str(p) for p in [Path(os.environ.get("CHROMEWEBDRIVER", "/nonexistent")) / "chromedriver"] if p.is_file()), None
)
REAL_RUN = os.environ.get("CLUSTERPROOF_REPORT_RUN")


def missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "no Selenium (pip install .[browser], as tox does)"
    if BROWSER is None or DRIVER is None:
        return "no headless Chromium with its chromedriver (apt-get install chromium chromium-driver)"
    return None


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the module, its console kept."""
    why = missing()
    if why:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(f"{why}: report.html not opened in a browser")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = BROWSER
    for flag in ("--headless=new", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
                 "--disable-background-networking", "--disable-component-update", "--no-first-run"):
        options.add_argument(flag)
    if os.geteuid() == 0:
        options.add_argument("--no-sandbox")  # Chromium refuses root without it
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


class Page:
    """A report page and what it was made from."""

    def __init__(self, name: str, html: Path, shots: Path) -> None:
        self.name, self.html, self.shots = name, html, shots
        self.claims = json.loads((html.parent / "claims.json").read_text())

    @property
    def modules(self) -> set[str]:
        return {t["nodeid"].split("::")[0] for c in self.claims["claims"] for t in c.get("tests", [])}


def recorded_page(tmp_path_factory: pytest.TempPathFactory) -> Page:
    runs = tmp_path_factory.mktemp("runs")
    shutil.copytree(DATA, runs, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.py"))
    html = write([runs / "failures"], [runs / "history"])
    return Page("recorded-failures", html, ROOT / ".clusterproof" / "screenshots")


def real_page() -> Page:
    run = Path(REAL_RUN or "").resolve()
    artifacts = run / "artifacts" if (run / "artifacts").is_dir() else run
    html = artifacts / PAGE if (artifacts / PAGE).is_file() else write([artifacts])
    return Page("report", html, artifacts / "screenshots")


@pytest.fixture(scope="module", params=["recorded", *(["run"] if REAL_RUN else [])])
def page(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Page:
    return recorded_page(tmp_path_factory) if request.param == "recorded" else real_page()


def show(driver, page: Page, size: tuple[int, int], *, mobile: bool = False) -> None:
    """The page in a viewport of `size` CSS pixels (a phone's: mobile, so its viewport meta counts)."""
    width, height = size
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
    )
    driver.get(page.html.as_uri())


def geometry(driver) -> dict:
    return driver.execute_script(
        """
        const top = (sel) => {
          const e = document.querySelector(sel);
          return e ? e.getBoundingClientRect().top : null;
        };
        return {
          width: window.innerWidth, height: window.innerHeight,
          scrollWidth: document.documentElement.scrollWidth,
          firstAttention: top('#attention li a'),
          firstHeldRow: top('tr.v-held'),
          widestPre: Math.max(0, ...[...document.querySelectorAll('pre')].map(p => p.getBoundingClientRect().right)),
          fontSize: parseFloat(getComputedStyle(document.body).fontSize),
          // text squeezed into a column a few letters wide (a table with too many columns for the width)
          squeezed: [...document.querySelectorAll('td, th, li, p, pre, summary')]
            .filter(e => !e.matches('td.h, th.run') && e.getClientRects().length > 0
                    && e.textContent.trim().length >= 10 && e.getBoundingClientRect().width < 40)
            .map(e => e.textContent.trim().slice(0, 40)),
        };"""
    )


def open_every_details(driver) -> None:
    driver.execute_script("document.querySelectorAll('details').forEach(d => d.open = true)")


def screenshot(driver, page: Page, width: int) -> Path:
    page.shots.mkdir(parents=True, exist_ok=True)
    shot = page.shots / f"{page.name}-{width}.png"
    driver.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return shot


def failed_claims(page: Page) -> list[dict]:
    return [c for c in page.claims["claims"] if c["verdict"] in ("failed", "error")]


def test_the_verdict_counts_at_the_top_are_claims_json_s(browser, page):
    from selenium.webdriver.common.by import By

    show(browser, page, DESKTOP)
    shown = {}
    for badge in browser.find_elements(By.CSS_SELECTOR, "header .counts .count"):
        n, verdict = badge.text.split(" ", 1)
        shown[verdict] = int(n)
    recorded = {v: n for v, n in page.claims["counts"].items() if n}
    assert shown == recorded
    headline = browser.find_element(By.CSS_SELECTOR, "header .verdict").text
    failed, errors = recorded.get("failed", 0), recorded.get("error", 0)
    bad = failed or errors  # a run with errors only says "0 claims failed, 1 error"
    assert headline.startswith(f"{failed} claim{'s' if failed != 1 else ''} failed" if bad else "No claim failed")


def test_a_failed_claim_s_diagnostics_open_when_clicked(browser, page):
    from selenium.webdriver.common.by import By

    with_diagnostics = [c for c in failed_claims(page) if any(t.get("diagnostics") for t in c["tests"])]
    if not with_diagnostics:
        pytest.skip("no failed claim with diagnostics in this run: nothing to open")
    show(browser, page, DESKTOP)
    anchor = "claim-" + re.sub(r"[^A-Za-z0-9-]+", "-", with_diagnostics[0]["id"])
    row = browser.find_element(By.ID, anchor)
    details = row.find_element(By.XPATH, "following-sibling::tr[1]").find_element(
        By.XPATH, ".//details[summary[starts-with(normalize-space(), 'diagnostics of')]]"
    )
    text = details.find_element(By.TAG_NAME, "pre")
    assert not text.is_displayed()
    details.find_element(By.TAG_NAME, "summary").click()
    assert text.is_displayed()
    first_line = next(line for line in text.text.splitlines() if line.strip())
    assert first_line.startswith("cluster ") or first_line.startswith("==")  # what diagnostics.txt starts with
    assert text.size["height"] > 50


def test_the_timeline_has_a_bar_per_module(browser, page):
    from selenium.webdriver.common.by import By

    show(browser, page, DESKTOP)
    timeline = browser.find_element(By.CSS_SELECTOR, 'svg.timeline[aria-label="run timeline"]')
    bars = browser.execute_script(
        """return [...arguments[0].querySelectorAll('rect.module-span')].map(r => ({
             title: r.parentNode.querySelector('title').textContent, width: r.getBoundingClientRect().width}));""",
        timeline,
    )
    named = [re.match(r"^module (.+): ", bar["title"]).group(1) for bar in bars]
    assert sorted(named) == sorted(page.modules)  # one bar per module, each named by its tooltip
    assert all(bar["width"] > 0 for bar in bars)


def test_the_page_logs_no_console_error(browser, page):
    show(browser, page, DESKTOP)
    open_every_details(browser)
    errors = [entry for entry in browser.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")]
    assert errors == []


def test_it_reads_at_a_phone_s_width(browser, page):
    show(browser, page, PHONE, mobile=True)
    closed = geometry(browser)
    screenshot(browser, page, PHONE[0])
    assert closed["width"] == PHONE[0]
    assert closed["fontSize"] >= 13
    if failed_claims(page):  # what failed is in the first screen
        assert 0 < closed["firstAttention"] < PHONE[1]
    open_every_details(browser)
    opened = geometry(browser)
    for state in (closed, opened):  # nothing makes a person scroll sideways or read a letter per line
        assert state["scrollWidth"] <= PHONE[0], state
        assert state["widestPre"] <= PHONE[0], state
        assert state["squeezed"] == [], state


def test_it_reads_at_1400_px_failures_first(browser, page):
    show(browser, page, DESKTOP)
    closed = geometry(browser)
    screenshot(browser, page, DESKTOP[0])
    assert closed["width"] == DESKTOP[0]
    if failed_claims(page):  # the failures are listed at the top, in the first screen, before any held row
        assert 0 < closed["firstAttention"] < DESKTOP[1] / 2
        if closed["firstHeldRow"] is not None:
            assert closed["firstAttention"] < closed["firstHeldRow"]
    open_every_details(browser)
    opened = geometry(browser)
    for state in (closed, opened):
        assert state["scrollWidth"] <= DESKTOP[0], state
        assert state["widestPre"] <= DESKTOP[0], state
        assert state["squeezed"] == [], state
