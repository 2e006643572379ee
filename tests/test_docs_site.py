"""The built documentation site, opened in a real browser, offline.

The site is served from 127.0.0.1 and every page is opened in headless Chromium (Debian's
``chromium`` and ``chromium-driver``, driven by selenium). Checked: every page loads with no
console error and fetches nothing from another host; every image has been drawn
(``naturalWidth > 0``); the mathematics of the notes' pages has been typeset, with no raw TeX
left there nor in the API reference (docstrings write ``$...$``); every internal link resolves,
to the page and to the anchor; the site's search for "bias correction" lists the notes' page on
it. The static HTML is also read for any script,
stylesheet, image or font it would load from another host.

The site is the one named by ``JAXOPT_NOTES_DOCS_HTML`` (``.ci/run`` builds it first), or is
built here. Outside CI the test skips, saying why, when no browser or driver is installed;
with ``CI=true`` it must run.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() == "true"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
REMOTE = re.compile(r"""<(?:script|link|img|source|iframe)\b[^>]*\b(?:src|href)\s*=\s*["'](?:https?:)?//""", re.I)
REMOTE_CSS = re.compile(r"""url\(\s*["']?(?:https?:)?//""", re.I)


def unavailable(reason: str) -> None:
    """Skips outside CI; fails in CI, where the browser test must run."""
    if IN_CI:
        pytest.fail(f"CI=true but {reason}; .ci/run installs chromium and chromium-driver")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser_paths() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        unavailable("no headless browser here (apt-get install chromium chromium-driver)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        unavailable("selenium is not installed (pip install '.[docs]')")
    return chromium, driver


@pytest.fixture(scope="module")
def site(browser_paths, tmp_path_factory) -> Path:
    given = os.environ.get("JAXOPT_NOTES_DOCS_HTML")
    if given:
        path = Path(given)
        assert (path / "index.html").is_file(), f"JAXOPT_NOTES_DOCS_HTML={given} holds no built site"
        return path
    out = tmp_path_factory.mktemp("site")
    build = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", "docs", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert build.returncode == 0, f"the site does not build:\n{build.stdout[-3000:]}\n{build.stderr[-5000:]}"
    return out


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server(site) -> Iterator[str]:
    handler = functools.partial(QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def browser(browser_paths, tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = browser_paths
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def pages_of(site: Path) -> list[str]:
    return sorted(path.relative_to(site).as_posix() for path in site.rglob("*.html"))


WAIT_FOR_MATH = """
const done = arguments[arguments.length - 1];
if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
  MathJax.startup.promise.then(() => done(true), () => done(false));
} else { done(null); }
"""

PAGE_REPORT = """
const article = document.querySelector("article") || document.body;
const text = article.cloneNode(true);
text.querySelectorAll("pre, code, mjx-container, script, style").forEach(node => node.remove());
return {
  images: Array.from(document.images).map(img => [img.getAttribute("src"), img.complete, img.naturalWidth]),
  math: document.querySelectorAll(".math").length,
  typeset: document.querySelectorAll(".math mjx-container").length,
  prose: text.innerText,
  links: Array.from(document.querySelectorAll("a[href]")).map(a => a.href),
  ids: Array.from(document.querySelectorAll("[id]")).map(node => node.id),
  resources: performance.getEntriesByType("resource").map(entry => entry.name),
};
"""

RAW_TEX = re.compile(r"\\[A-Za-z]+|\$|\\\(|\\\[")


def test_static_html_loads_nothing_from_another_host(site):
    offenders = []
    for page in pages_of(site):
        html = (site / page).read_text(errors="replace")
        offenders += [f"{page}: {m.group(0)}" for m in REMOTE.finditer(html)]
    for css in site.rglob("*.css"):
        offenders += [f"{css.relative_to(site)}: {m.group(0)}" for m in REMOTE_CSS.finditer(css.read_text())]
    assert not offenders, "remote references:\n" + "\n".join(offenders[:20])


def test_every_page_works_in_a_real_browser(site, server, browser):
    pages = pages_of(site)
    errors: list[str] = []
    ids: dict[str, set[str]] = {}
    links: dict[str, set[str]] = {}
    counts = {"images": 0, "math pages": 0, "formulas": 0}
    browser.set_script_timeout(30)
    for page in pages:
        browser.get(server + page)
        math_ready = browser.execute_async_script(WAIT_FOR_MATH)
        report = browser.execute_script(PAGE_REPORT)
        for entry in browser.get_log("browser"):
            if entry["level"] in ("SEVERE", "ERROR"):
                errors.append(f"{page}: console {entry['level']}: {entry['message']}")
        for name in report["resources"]:
            if not name.startswith(server):
                errors.append(f"{page}: fetched {name} from another host")
        for src, complete, width in report["images"]:
            counts["images"] += 1
            if not complete or width == 0:
                errors.append(f"{page}: image {src} not drawn (complete={complete}, naturalWidth={width})")
        if report["math"]:
            counts["math pages"] += 1
            counts["formulas"] += report["typeset"]
            if math_ready is not True or report["typeset"] < report["math"]:
                errors.append(f"{page}: {report['typeset']} of {report['math']} formulas typeset ({math_ready})")
        if page.startswith(("notes/", "api/")):
            raw = RAW_TEX.findall(report["prose"])
            if raw:
                errors.append(f"{page}: raw TeX left in the text: {raw[:5]}")
        if page.startswith("notes/"):
            if page != "notes/index.html" and not report["math"]:
                errors.append(f"{page}: a notes page without mathematics")
        ids[page] = set(report["ids"])
        links[page] = set(report["links"])
    broken = []
    checked = 0
    for page, targets in links.items():
        for target in targets:
            if not target.startswith(server):
                continue
            parts = urllib.parse.urlsplit(target)
            path = urllib.parse.unquote(parts.path)[1:] or "index.html"
            if path.endswith("/"):
                path += "index.html"
            checked += 1
            if not (site / path).is_file():
                broken.append(f"{page} -> {target}: no such file")
            elif parts.fragment and path in ids and urllib.parse.unquote(parts.fragment) not in ids[path]:
                broken.append(f"{page} -> {target}: no anchor #{parts.fragment}")
    print(
        f"\nbrowser: {len(pages)} pages loaded in headless Chromium from {server}, "
        f"{counts['images']} images drawn, {counts['formulas']} formulas typeset on {counts['math pages']} pages, "
        f"{checked} internal links resolved, {len(errors)} errors, {len(broken)} broken links"
    )
    assert not errors, "\n".join(errors[:40])
    assert not broken, "\n".join(broken[:40])
    assert counts["images"] > 10 and counts["formulas"] > 50, counts


def test_search_finds_the_notes_page_on_bias_correction(site, server, browser):
    from selenium.webdriver.common.by import By

    browser.get(server + "search.html?q=bias+correction")
    deadline = time.monotonic() + 30
    found: list[str] = []
    while time.monotonic() < deadline:
        found = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "#search-results a")]
        if any("notes/bias_correction.html" in href for href in found):
            break
        time.sleep(0.25)
    print(f"\nsearch 'bias correction': {len(found)} results, first {found[:3]}")
    assert any("notes/bias_correction.html" in href for href in found), found
    errors = [entry for entry in browser.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")]
    assert not errors, errors
