"""Check a rendered plots page in headless Chromium, driven by Playwright.

:func:`check_page` opens the page that :func:`seqlm.ops.plots.render_plots` wrote in the system's
Chromium (Debian's ``chromium`` package at /usr/bin/chromium, or ``$SEQLM_CHROMIUM``; Playwright
launches it by path and never downloads a browser of its own) and reports

* script errors: uncaught exceptions and ``console.error`` / ``console.assert`` calls;
* every request that would leave the machine (anything but ``file:``, ``data:``, ``blob:``, ...);
  such requests are aborted, so the verdict is the same with or without a network;
* what each plot holds once drawn: vega-embed's error if it failed, the data marks it drew, the
  rows of its datasets and the description of every drawn item.

A page that loads but misbehaves is reported in the :class:`PageCheck`, never raised;
:meth:`PageCheck.problems` lists what makes it broken.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seqlm.ops.dvc_plots import PlotsError

log = logging.getLogger(__name__)

CHROMIUM = "/usr/bin/chromium"  # Debian's package
CHROMIUM_ENV = "SEQLM_CHROMIUM"  # overrides it: another Chromium or Chrome binary
CHROMIUM_HINT = (
    f"install Debian's package (`apt-get install -y chromium`, or `make browser` as "
    f"root) or set {CHROMIUM_ENV} to a Chromium or Chrome binary"
)
PLAYWRIGHT_HINT = (
    "install the pinned Playwright (`make browser` or `make setup-dev`); it drives "
    "the system Chromium, so never run `playwright install`"
)

LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:", "chrome:", "devtools:")
CONSOLE_ERRORS = ("error", "assert")  # console.* calls that make the page broken
CONSOLE_WARNINGS = ("warning",)  # console.* calls that are reported


@dataclass(frozen=True)
class PlotState:
    """One plot as the browser drew it."""

    id: str
    error: str | None  # vega-embed's rejection, if it failed
    marks: int  # SVG elements drawn by data marks (lines, points, bars; not axes or legends)
    data: dict[str, list[dict[str, Any]]]  # the compiled spec's datasets: the rows dvc passed in
    drawn: list[str]  # each drawn data item's description: "rank: 1; frequency: 669; rev: ..."

    def drawn_fields(self) -> list[dict[str, str]]:
        """The drawn items' descriptions as dicts: ``{"rank": "1", "frequency": "669", ...}``."""
        return [
            dict(part.split(": ", 1) for part in text.split("; ") if ": " in part)
            for text in self.drawn
        ]


@dataclass(frozen=True)
class PageCheck:
    """What loading a plots page in Chromium showed."""

    url: str
    errors: list[str] = field(default_factory=list)  # exceptions, console errors
    warnings: list[str] = field(default_factory=list)  # console warnings (Vega's included)
    remote_requests: list[str] = field(default_factory=list)  # anything not file:, data:, blob:
    plot_divs: list[str] = field(default_factory=list)  # ids of the page's plot divs
    plots: dict[str, PlotState] = field(default_factory=dict)

    def problems(self) -> list[str]:
        """Everything that makes the page broken: empty when it rendered every plot offline."""
        found = list(self.errors)
        found += [f"request left the machine: {url}" for url in self.remote_requests]
        if not self.plot_divs:
            found.append("the page holds no plot")
        for div in self.plot_divs:
            plot = self.plots.get(div)
            if plot is None:
                found.append(f"plot {div!r} was never embedded (its script did not run)")
            elif plot.error:
                found.append(f"plot {div!r} failed: {plot.error}")
            elif plot.marks == 0:
                found.append(f"plot {div!r} drew no marks")
        return found

    def rows(self, plot_id: str) -> list[dict[str, Any]]:
        """Every row of plot ``plot_id``'s datasets (what dvc put in the spec, as Vega parsed)."""
        return [row for rows in self.plots[plot_id].data.values() for row in rows]


# Evaluated in the page once it has loaded: waits for every vega-embed call (the page template
# keeps their promises in window.seqlmPlots), then describes each plot's view.
_DESCRIBE_PLOTS = """
async () => {
  // a row's own number, string and boolean fields (Vega rows can point back into the scenegraph)
  const scalars = row => Object.fromEntries(Object.entries(row).filter(
    ([, v]) => v === null || ["number", "string", "boolean"].includes(typeof v)));
  // the description Vega-Lite gives each item of a data mark ("rank: 1; frequency: 669; ...")
  const describe = (mark, out) => {
    for (const item of mark.items || []) {
      if (mark.role === "mark" && item.description) out.push(item.description);
      for (const child of item.items || []) describe(child, out);
    }
    return out;
  };
  const plots = {};
  for (const [id, promise] of Object.entries(window.seqlmPlots || {})) {
    try {
      const {view, vgSpec} = await promise;
      const data = Object.fromEntries(
        (vgSpec.data || []).map(d => [d.name, view.data(d.name).map(scalars)]));
      const marks = document.querySelectorAll(
        "#" + CSS.escape(id) + " svg.marks g.role-mark > *").length;
      plots[id] = {id, error: null, marks, data, drawn: describe(view.scenegraph().root, [])};
    } catch (e) {
      plots[id] = {id, error: String(e && e.stack || e), marks: 0, data: {}, drawn: []};
    }
  }
  return {plots, embedded: typeof window.seqlmPlots === "object"};
}
"""


def chromium_path() -> str:
    """The browser :func:`check_page` runs: ``$SEQLM_CHROMIUM``, else Debian's /usr/bin/chromium."""
    return os.environ.get(CHROMIUM_ENV) or CHROMIUM


def plot_divs(index_html: Path) -> list[str]:
    """The ids of the divs dvc-render has vega-embed draw into (read from the file: vega-embed
    replaces each div's script)."""
    return re.findall(r"vegaEmbed\('#([^']+)'", Path(index_html).read_text(encoding="utf-8"))


class _PageListener:
    """Collects a page's errors, warnings and remote requests while it loads and draws."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.remote: list[str] = []

    def attach(self, page: Any) -> None:
        """Listen to ``page`` and abort every request that would leave the machine."""
        page.on("console", self.on_console)
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))
        page.route(lambda url: not url.startswith(LOCAL_SCHEMES), self.on_remote)

    def on_console(self, message: Any) -> None:
        """Keep a console error (with where it came from) or warning."""
        kind = message.type
        location = message.location or {}
        where = f" ({location['url']})" if location.get("url") else ""
        if kind in CONSOLE_ERRORS:
            self.errors.append(f"console.{kind}: {message.text}{where}")
        elif kind in CONSOLE_WARNINGS:
            self.warnings.append(f"console.{kind}: {message.text}")

    def on_remote(self, route: Any) -> None:
        """Record a request for the internet and abort it, as an offline machine would."""
        self.remote.append(route.request.url)
        route.abort("internetdisconnected")


def check_page(
    index_html: Path,
    *,
    chromium: str | None = None,
    screenshot: Path | None = None,
    window: tuple[int, int] = (1200, 2000),
    timeout_s: float = 30.0,
) -> PageCheck:
    """Open ``index_html`` in headless Chromium and report errors, remote requests and drawn plots.

    ``chromium`` defaults to ``$SEQLM_CHROMIUM`` or /usr/bin/chromium; ``screenshot`` (a .png path)
    saves the whole page as drawn. Raises PlotsError if Chromium or Playwright is missing or the
    page cannot be opened; a page that loads but misbehaves is reported in the result.
    """
    chromium = chromium or chromium_path()
    if shutil.which(chromium) is None:
        raise PlotsError(f"Chromium not found at {chromium}: {CHROMIUM_HINT}")
    index_html = Path(index_html).resolve()
    if not index_html.is_file():
        raise PlotsError(f"no page to check at {index_html}")
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        raise PlotsError(f"Playwright is not installed ({e}): {PLAYWRIGHT_HINT}") from None
    url = index_html.as_uri()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, headless=True)
            try:
                page = browser.new_page(viewport={"width": window[0], "height": window[1]})
                page.set_default_timeout(timeout_s * 1000)
                return _inspect(page, url, plot_divs(index_html), screenshot)
            finally:
                browser.close()
    except PlaywrightError as e:
        raise PlotsError(f"checking {url} in Chromium ({chromium}) failed: {e}") from None


def _inspect(page: Any, url: str, divs: list[str], screenshot: Path | None) -> PageCheck:
    """Load ``url``, wait for every plot, describe them; screenshot the page if asked."""
    listener = _PageListener()
    listener.attach(page)
    page.goto(url, wait_until="load")
    state = page.evaluate(_DESCRIBE_PLOTS)
    if screenshot is not None:
        page.screenshot(path=str(screenshot), full_page=True)
    errors = list(listener.errors)
    if not state["embedded"]:
        errors.append(
            "window.seqlmPlots is missing: the page was not rendered with seqlm's template"
        )
    plots = {pid: PlotState(**p) for pid, p in state["plots"].items()}
    return PageCheck(url, errors, list(listener.warnings), list(listener.remote), divs, plots)


def check_and_report(index_html: Path, screenshot: Path | None = None) -> int:
    """Check ``index_html``; print each problem to stderr. Returns the exit status (0: clean)."""
    report = check_page(index_html, screenshot=screenshot)
    for warning in report.warnings:
        log.warning("page: %s", warning)
    problems = report.problems()
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        return 1
    log.info(
        "checked in Chromium: %d plot(s) drawn, no errors, no remote requests", len(report.plots)
    )
    return 0
