"""report.html opened in a real browser: headless Chromium (Debian's `chromium` package) lays
out the failing run's page, a test copy of it measures where things land, and a screenshot is
taken. Skipped, saying so, where no Chromium is installed.

CLUSTERPROOF_SCREENSHOT=FILE keeps the screenshot (to look at it)."""

import json
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from clusterproof.report.page import write

DATA = Path(__file__).parent / "data" / "report"
WIDTH, HEIGHT = 1280, 2000
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
BROWSER = next((b for b in map(shutil.which, BROWSERS) if b), None)

pytestmark = pytest.mark.skipif(
    BROWSER is None, reason="no headless Chromium (apt-get install chromium): report.html not opened in a browser"
)

# Added to a copy of the page only (the page itself has no script): where things land in a
# 1280-wide window, with every <details> closed (as the page opens) and then all opened.
MEASURE = """<script>
function measure() {
  const top = (sel) => { const e = document.querySelector(sel); return e ? e.getBoundingClientRect().top : null; };
  return {
    width: window.innerWidth,
    scrollWidth: document.documentElement.scrollWidth,
    attentionFailed: top('#attention a[href="#claim-SVC-03"]'),
    failedRow: top('#claim-SVC-03'),
    firstHeldRow: top('tr.v-held'),
    widestPre: Math.max(...[...document.querySelectorAll('pre')].map(p => p.getBoundingClientRect().right)),
  };
}
const closed = measure();
document.querySelectorAll('details').forEach(d => d.open = true);
const opened = measure();
const out = document.createElement('pre');
out.id = 'measure';
out.textContent = JSON.stringify({closed, opened});
document.body.appendChild(out);
</script>"""


def chromium(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    profile = tmp / "profile"
    profile.mkdir(exist_ok=True)
    flags = [
        "--headless",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        f"--window-size={WIDTH},{HEIGHT}",
    ]
    if os.geteuid() == 0:
        flags.append("--no-sandbox")  # Chromium refuses root without it
    return subprocess.run([BROWSER, *flags, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    shutil.copytree(DATA, runs, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.py"))
    return write([runs / "failures"], [runs / "history"])


def test_failed_claims_show_in_the_first_screen_above_any_held_row_and_nothing_overflows(page, tmp_path):
    probe = page.with_name("measure.html")
    probe.write_text(page.read_text().replace("</body>", MEASURE + "</body>"))
    done = chromium("--dump-dom", probe.as_uri(), tmp=tmp_path)
    found = re.search(r'<pre id="measure">(.*?)</pre>', done.stdout, re.S)
    assert found, f"chromium measured nothing: rc={done.returncode} {done.stderr[-500:]}"
    m = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    closed, opened = m["closed"], m["opened"]
    assert closed["width"] == WIDTH
    # the failure is listed at the top, in the first screen, before the first held row
    assert 0 < closed["attentionFailed"] < HEIGHT / 2
    assert closed["attentionFailed"] < closed["failedRow"] < closed["firstHeldRow"]
    # long diagnostics and messages wrap inside their boxes: no sideways scrolling, open or closed
    for state in (closed, opened):
        assert state["scrollWidth"] <= WIDTH, state
        assert state["widestPre"] <= WIDTH, state


def test_screenshot_of_the_first_screen(page, tmp_path):
    shot = tmp_path / "report.png"
    done = chromium(f"--screenshot={shot}", page.as_uri(), tmp=tmp_path)
    assert shot.is_file(), f"no screenshot: rc={done.returncode} {done.stderr[-500:]}"
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (WIDTH, HEIGHT)
    assert len(data) > 50_000  # a drawn page, not a blank one
    keep = os.environ.get("CLUSTERPROOF_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)
