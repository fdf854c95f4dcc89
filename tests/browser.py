"""Real-browser plumbing shared by the browser tests: Debian's Chromium driven by playwright
(`executable_path`; playwright's own browser download cannot work here), allowed to talk only to
127.0.0.1 (every other request is aborted and listed on `page.outside_requests`).

Fixtures (imported into conftest.py): `browser` (one Chromium per test module; the module is
skipped when Chromium or playwright is missing) and `page` (a fresh local-only page; needs the
module's own `app` fixture, so the app is launched once per module).
"""
from __future__ import annotations

import contextlib
import os
import urllib.parse
from typing import Any, Iterator

import pytest

CHROMIUM = os.environ.get("STYLECORE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-gpu"]
TIMEOUT_MS = 60_000
# Images are compared in the page: a 448 px image's pixels sent over as JSON take a minute on a busy machine.
# page.evaluate(DIFFER, [img_a, img_b]): whether two decoded <img> differ in any pixel.
DIFFER = """([a, b]) => {
  const pixels = img => {
    const c = document.createElement('canvas');
    c.width = img.naturalWidth; c.height = img.naturalHeight;
    const g = c.getContext('2d');
    g.drawImage(img, 0, 0);
    return g.getImageData(0, 0, c.width, c.height).data;
  };
  const [p, q] = [pixels(a), pixels(b)];
  return p.length !== q.length || p.some((v, i) => v !== q[i]);
}"""
# img.evaluate(BLOCKY, k): [width, height, whether the top row's first k pixels are one colour]: an image
# enlarged k times with whole (nearest-neighbour) pixels, not a blurred thumbnail.
BLOCKY = """(img, k) => {
  const c = document.createElement('canvas');
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const g = c.getContext('2d');
  g.drawImage(img, 0, 0);
  const row = g.getImageData(0, 0, k, 1).data;
  const same = [...row].every((v, i) => v === row[i % 4]);
  return [img.naturalWidth, img.naturalHeight, same];
}"""


def wait_loaded(page: Any, img: Any, previous_src: str = "") -> str:
    """Wait until `img` shows a decoded picture whose src differs from `previous_src`; return the src."""
    img.wait_for()
    page.wait_for_function("([img, old]) => img.complete && img.naturalWidth > 0 && img.src !== old",
                           arg=[img.element_handle(), previous_src], timeout=TIMEOUT_MS)
    return img.get_attribute("src")


def spinbutton(page: Any, name: str) -> Any:
    """The number box labelled exactly `name`."""
    return page.get_by_role("spinbutton", name=name, exact=True)


@contextlib.contextmanager
def local_page(browser: Any, width: int = 1400, height: int = 1100, timeout_ms: int = TIMEOUT_MS) -> Iterator[Any]:
    """A new page in its own context that may only reach 127.0.0.1 / localhost."""
    context = browser.new_context(viewport={"width": width, "height": height})
    context.set_default_timeout(timeout_ms)
    outside: list[str] = []

    def local_only(route: Any) -> None:
        host = urllib.parse.urlsplit(route.request.url).hostname
        if route.request.url.startswith(("data:", "blob:")) or host in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", local_only)
    page = context.new_page()
    page.outside_requests = outside
    try:
        yield page
    finally:
        context.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM} (install Debian's chromium package, or set STYLECORE_TEST_CHROMIUM)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the python 'playwright' package is not installed")
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, app: Any) -> Iterator[Any]:
    with local_page(browser) as p:
        yield p
