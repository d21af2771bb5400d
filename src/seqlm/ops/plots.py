"""Render ``dvc.yaml``'s plots to an HTML page that works offline; check it in Chromium.

``dvc plots show`` writes ``index.html`` with ``<script>`` tags that fetch Vega, Vega-Lite and
Vega-Embed from cdn.jsdelivr.net; offline (CI, air-gapped machines) that page stays blank.
dvc-render only inserts those tags where the page template says ``{scripts}``, so
:func:`offline_template` builds a template without that placeholder and with the three libraries
inlined instead, read from
``tools/plots/node_modules`` (``npm ci --prefix tools/plots`` installs them, pinned by
``tools/plots/package-lock.json`` to the versions dvc-render asks the CDN for).

:func:`render_plots` runs ``dvc plots show`` (or ``dvc plots diff REV ...``) with that template, and
:func:`check_page` opens the result in headless Chromium through the DevTools protocol (over a pipe;
standard library only) and reports script errors, requests that left the machine, and what each plot
holds once drawn::

    python -m seqlm.ops.plots --out dvc_plots --check            # the workspace's plots
    python -m seqlm.ops.plots --out dvc_plots HEAD~1 HEAD        # compare two commits
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import json
import logging
import os
import re
import selectors
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seqlm.core.errors import SeqlmError

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = REPO_ROOT / "tools" / "plots" / "node_modules"
INSTALL_HINT = "run `npm ci --prefix tools/plots` in the seqlm checkout (needs node and npm)"

# package -> the built browser bundle jsdelivr serves for it (the package's "jsdelivr" field)
BUNDLES: dict[str, str] = {
    "vega": "build/vega.min.js",
    "vega-lite": "build/vega-lite.min.js",
    "vega-embed": "build/vega-embed.min.js",
}

CHROMIUM = "/usr/bin/chromium"  # Debian's package
CHROMIUM_ENV = "SEQLM_CHROMIUM"  # overrides it: another Chromium or Chrome binary
CHROMIUM_HINT = (f"install Debian's package (`apt-get install -y chromium`) or set {CHROMIUM_ENV} "
                 "to a Chromium or Chrome binary")

# dvc-render fills these by plain string replacement over the whole template, inlined JS included
PLACEHOLDERS = ("{scripts}", "{plot_divs}", "{refresh_tag}")


class PlotsError(SeqlmError):
    """The plots page could not be built, rendered or checked."""


# --- the page template ----------------------------------------------------------------------------

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
{refresh_tag}
<title>seqlm plots</title>
<style>
  body {{ margin: 0; padding: 1.5rem 2rem; font-family: system-ui, -apple-system, "Segoe UI",
         "DejaVu Sans", sans-serif; color: #1f2328; background: #fff; }}
  h1 {{ font-size: 1.25rem; font-weight: 600; margin: 0 0 1rem; }}
  main {{ display: flex; flex-wrap: wrap; gap: 1.5rem; align-items: flex-start; }}
  main > div {{ border: 1px solid #d0d7de; border-radius: 6px; padding: 0.75rem; }}
  table {{ border-spacing: 15px; }}
  .vega-embed {{ display: block; }}
  .vega-bind {{ font-size: 0.8rem; }}
</style>
{libraries}
<script>
/* Plots are drawn as SVG (sharp at any zoom, text selectable); the editor action needs the
   internet, so it is hidden. window.seqlmPlots maps each plot's div id to vega-embed's promise. */
(function () {{
  "use strict";
  var embed = window.vegaEmbed;
  var plots = {{}};
  window.seqlmPlots = plots;
  function offlineEmbed(el, spec, opts) {{
    var id = typeof el === "string" ? el.replace(/^#/, "") : el.id;
    var options = Object.assign(
      {{renderer: "svg", actions: {{export: true, source: true, compiled: true, editor: false}}}},
      opts || {{}});
    plots[id] = embed(el, spec, options);
    return plots[id];
  }}
  window.vegaEmbed = Object.assign(offlineEmbed, embed);
}})();
</script>
</head>
<body>
<h1>seqlm plots</h1>
<main>
{{plot_divs}}
</main>
</body>
</html>
"""


def _bundle_script(node_modules: Path, package: str, bundle: str) -> str:
    """One library's built bundle as an inline ``<script>``, with its version in a comment."""
    package_dir = node_modules / package
    manifest, code_path = package_dir / "package.json", package_dir / bundle
    if not manifest.is_file() or not code_path.is_file():
        raise PlotsError(f"{package} is not installed under {node_modules} (no {code_path.name}): "
                         f"{INSTALL_HINT}")
    version = json.loads(manifest.read_text(encoding="utf-8"))["version"]
    code = code_path.read_text(encoding="utf-8")
    code = re.sub(r"\n//# sourceMappingURL=\S+\s*$", "\n", code)  # the page ships no .map
    if re.search(r"</script|<!--", code, flags=re.IGNORECASE):
        raise PlotsError(f"{code_path} contains '</script' or '<!--' and cannot be inlined as is")
    for placeholder in PLACEHOLDERS:
        if placeholder in code:
            raise PlotsError(f"{code_path} contains dvc-render's placeholder {placeholder!r}")
    return f"<script>/* {package}@{version} ({bundle}) */\n{code}\n</script>"


def offline_template(node_modules: Path = NODE_MODULES) -> str:
    """An HTML template for ``dvc plots show --html-template`` with Vega inlined and no CDN tags.

    It holds ``{plot_divs}`` (and ``{refresh_tag}``) for dvc-render, and no ``{scripts}``, so
    dvc-render adds no ``<script src="https://cdn...">`` tags. Raises PlotsError if a library is
    missing.
    """
    node_modules = Path(node_modules)
    if not node_modules.is_dir():
        raise PlotsError(f"{node_modules} does not exist: {INSTALL_HINT}")
    libraries = "\n".join(
        _bundle_script(node_modules, package, bundle) for package, bundle in BUNDLES.items()
    )
    _warn_on_version_drift(node_modules)
    # format() only touches PAGE's own braces; the bundles go in afterwards, untouched
    return PAGE.format(refresh_tag="{refresh_tag}", libraries="\x00").replace("\x00", libraries)


def dvc_render_versions() -> dict[str, str]:
    """The Vega library versions dvc-render loads from the CDN: ``{"vega": "5.20.2", ...}``."""
    from dvc_render.vega import VegaRenderer

    return dict(re.findall(r"/npm/([a-z-]+)@([0-9][^\"'/\s]*)", VegaRenderer.SCRIPTS))


def _warn_on_version_drift(node_modules: Path) -> None:
    """Log a warning where an installed library is not the version dvc-render was written for."""
    for package, wanted in dvc_render_versions().items():
        manifest = node_modules / package / "package.json"
        if manifest.is_file():
            installed = json.loads(manifest.read_text(encoding="utf-8"))["version"]
            if installed != wanted:
                log.warning("%s@%s is installed but dvc-render uses %s@%s: update "
                            "tools/plots/package.json and run npm install there",
                            package, installed, package, wanted)


# --- dvc plots show / diff ------------------------------------------------------------------------

def plots_command(
    out_dir: Path,
    template: Path,
    targets: Sequence[str] | None = None,
    revisions: Sequence[str] | None = None,
    experiment: bool = False,
) -> list[str]:
    """The dvc command line: ``plots show`` for the workspace, ``plots diff`` given revisions."""
    cmd = [sys.executable, "-m", "dvc", "plots"]
    if revisions or experiment:
        cmd += ["diff", *(revisions or []), "--html-template", str(template), "--out", str(out_dir)]
        if experiment:
            cmd.append("--experiment")
        if targets:
            cmd += ["--targets", *targets]  # nargs="*": keep it last so it swallows no revision
    else:
        cmd += ["show", "--html-template", str(template), "--out", str(out_dir), *(targets or [])]
    return cmd


def render_plots(
    root: Path,
    out_dir: Path,
    targets: list[str] | None = None,
    revisions: list[str] | None = None,
    *,
    experiment: bool = False,
    node_modules: Path = NODE_MODULES,
) -> Path:
    """Render the DVC repository ``root``'s plots to ``out_dir/index.html`` and return that path.

    ``targets`` narrows the plots (dvc.yaml plot ids or files); ``revisions`` (commits, branches, or
    experiment names with ``experiment=True``) compares them with ``dvc plots diff``. The page loads
    Vega from the page itself, never from the internet. A relative ``out_dir`` is under ``root``.
    """
    root, out_dir = Path(root).resolve(), Path(root, out_dir).resolve()
    if not (root / ".dvc").is_dir():
        raise PlotsError(f"{root} is not a DVC repository (no .dvc/ folder)")
    index = out_dir / "index.html"
    index.unlink(missing_ok=True)  # dvc writes nothing if no plot loads: never return a stale page
    with tempfile.TemporaryDirectory(prefix="seqlm-plots-") as tmp:
        template = Path(tmp) / "template.html"
        template.write_text(offline_template(node_modules), encoding="utf-8")
        cmd = plots_command(out_dir, template, targets, revisions, experiment)
        log.info("rendering plots: dvc %s", " ".join(cmd[3:]))
        proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, env=_dvc_env())
    if proc.returncode != 0:
        raise PlotsError(f"`dvc {' '.join(cmd[3:])}` exited {proc.returncode} in {root}:\n"
                         f"{proc.stderr.strip() or proc.stdout.strip()}")
    for line in proc.stderr.splitlines():
        if line.strip():
            log.warning("dvc: %s", line.strip())
    if not index.is_file():
        raise PlotsError(f"dvc wrote no {index}: no plot could be loaded "
                         f"(run `dvc repro` first?)\n{proc.stderr.strip()}")
    return index


def _dvc_env() -> dict[str, str]:
    """The environment dvc runs in: this interpreter's bin first, no analytics."""
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
            "DVC_NO_ANALYTICS": "1"}


# --- checking the page in headless Chromium -------------------------------------------------------

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
        return [dict(part.split(": ", 1) for part in text.split("; ") if ": " in part)
                for text in self.drawn]


@dataclass(frozen=True)
class PageCheck:
    """What loading a plots page in Chromium showed."""

    url: str
    errors: list[str] = field(default_factory=list)    # exceptions, console errors, failed loads
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


# Runs in the page once it has loaded: waits for every vega-embed call, then describes the plots.
_INSPECT_JS = """
(async () => {
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
})()
"""

LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:", "chrome:", "devtools:")
CONSOLE_PROBLEMS = ("error", "assert", "warning")  # console.* calls worth reporting


class _DevTools:
    """A minimal Chrome DevTools Protocol client over ``--remote-debugging-pipe`` (fds 3 and 4)."""

    def __init__(self, chromium: str, workdir: Path, window: tuple[int, int]) -> None:
        to_browser, from_browser = os.pipe(), os.pipe()
        # move the browser's ends above 9 so that dup2 onto 3 and 4 cannot clobber one of them
        browser_in = _high_fd(to_browser[0])
        browser_out = _high_fd(from_browser[1])
        self._write_fd, self._read_fd = to_browser[1], from_browser[0]
        args = [
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-extensions",
            "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
            f"--window-size={window[0]},{window[1]}", f"--user-data-dir={workdir / 'profile'}",
            "--remote-debugging-pipe", "about:blank",
        ]

        def attach_pipe() -> None:  # in the child, before exec: the pipe ends Chromium expects
            os.dup2(browser_in, 3)
            os.dup2(browser_out, 4)

        # close_fds=False: Python opens every other descriptor non-inheritable, and closing fds
        # would close 3 and 4 too; the high duplicates are close-on-exec
        self._stderr_path = workdir / "chromium-stderr.log"
        with open(self._stderr_path, "wb") as stderr:  # a file: a full pipe would stall Chromium
            self.proc = subprocess.Popen(
                args, preexec_fn=attach_pipe, close_fds=False,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
            )
        os.close(browser_in)
        os.close(browser_out)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, params: dict[str, Any] | None = None, *,
             session: str | None = None, timeout_s: float = 20.0) -> dict[str, Any]:
        """Send one command and return its result; events that arrive meanwhile go to ``events``."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self._send(message)
        deadline = time.monotonic() + timeout_s
        while True:
            reply = self._receive(deadline, waiting_for=method)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise PlotsError(f"Chromium refused {method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, event: str, timeout_s: float, since: int = 0) -> dict[str, Any]:
        """The first event called ``event`` from ``events[since:]`` on (received or to come)."""
        deadline = time.monotonic() + timeout_s
        seen = since
        while True:
            for message in self.events[seen:]:
                if message.get("method") == event:
                    return message
            seen = len(self.events)
            self.events.append(self._receive(deadline, waiting_for=event))

    def _send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message).encode() + b"\0"
        try:
            while data:
                data = data[os.write(self._write_fd, data):]
        except BrokenPipeError:
            raise PlotsError(f"Chromium exited before {message['method']}: "
                             f"{self._stderr_tail()}") from None

    def _receive(self, deadline: float, waiting_for: str) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            with selectors.DefaultSelector() as sel:
                sel.register(self._read_fd, selectors.EVENT_READ)
                ready = sel.select(max(left, 0))
            if not ready:
                raise PlotsError(f"Chromium sent no {waiting_for} in time")
            chunk = os.read(self._read_fd, 1 << 20)
            if not chunk:
                raise PlotsError(f"Chromium exited while waiting for {waiting_for}: "
                                 f"{self._stderr_tail()}")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def _stderr_tail(self) -> str:
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        return self._stderr_path.read_text(errors="replace").strip()[-2000:]

    def close(self) -> None:
        """Ask the browser to quit; kill it if it does not within a few seconds."""
        try:
            self._send({"id": 0, "method": "Browser.close"})
        except PlotsError:
            pass  # already gone
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._write_fd)
        os.close(self._read_fd)


def _high_fd(fd: int) -> int:
    """A duplicate of ``fd`` numbered 10 or more (the original is closed)."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


def chromium_path() -> str:
    """The browser :func:`check_page` runs: ``$SEQLM_CHROMIUM``, else Debian's /usr/bin/chromium."""
    return os.environ.get(CHROMIUM_ENV) or CHROMIUM


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
    saves the whole page as drawn. Raises PlotsError if Chromium is missing or does not answer; a
    page that loads but misbehaves is reported in the result, not raised.
    """
    chromium = chromium or chromium_path()
    if shutil.which(chromium) is None:
        raise PlotsError(f"Chromium not found at {chromium}: {CHROMIUM_HINT}")
    index_html = Path(index_html).resolve()
    if not index_html.is_file():
        raise PlotsError(f"no page to check at {index_html}")
    with tempfile.TemporaryDirectory(prefix="seqlm-chromium-") as workdir:
        browser = _DevTools(chromium, Path(workdir), window)
        try:
            return _inspect(browser, index_html.as_uri(), _plot_divs(index_html), screenshot,
                            window, timeout_s)
        finally:
            browser.close()


def _plot_divs(index_html: Path) -> list[str]:
    """The ids of the divs dvc-render has vega-embed draw into (read from the file: vega-embed
    replaces each div's script)."""
    return re.findall(r"vegaEmbed\('#([^']+)'", index_html.read_text(encoding="utf-8"))


def _inspect(browser: _DevTools, url: str, plot_divs: list[str], screenshot: Path | None,
             window: tuple[int, int], timeout_s: float) -> PageCheck:
    """Load ``url``, wait for every plot, describe them; screenshot the page if asked."""
    session = _open_page(browser, url, window, timeout_s)
    inspected = browser.call("Runtime.evaluate", {"expression": _INSPECT_JS, "awaitPromise": True,
                             "returnByValue": True}, session=session, timeout_s=timeout_s)
    if "exceptionDetails" in inspected:
        raise PlotsError(f"inspecting {url} failed: "
                         f"{_describe_exception(inspected['exceptionDetails'])}")
    state = inspected["result"]["value"]
    if screenshot is not None:
        shot = browser.call("Page.captureScreenshot",
                            {"format": "png", "captureBeyondViewport": True},
                            session=session, timeout_s=timeout_s)
        Path(screenshot).write_bytes(base64.b64decode(shot["data"]))
    errors, warnings, remote = _sort_events(browser.events)
    if not state["embedded"]:
        errors.append("window.seqlmPlots is missing: "
                      "the page was not rendered with seqlm's template")
    plots = {pid: PlotState(**p) for pid, p in state["plots"].items()}
    return PageCheck(url, errors, warnings, remote, plot_divs, plots)


def _open_page(browser: _DevTools, url: str, window: tuple[int, int], timeout_s: float) -> str:
    """A new tab, listened to from before it loads ``url``; returns its DevTools session id."""
    target = browser.call("Target.createTarget", {"url": "about:blank"}, timeout_s=timeout_s)
    session = browser.call("Target.attachToTarget",
                           {"targetId": target["targetId"], "flatten": True})["sessionId"]
    for domain in ("Page", "Runtime", "Log", "Network"):
        browser.call(f"{domain}.enable", session=session)
    browser.call("Emulation.setDeviceMetricsOverride", {"width": window[0], "height": window[1],
                 "deviceScaleFactor": 1, "mobile": False}, session=session)
    before_navigation = len(browser.events)  # about:blank's own load event must not count
    navigation = browser.call("Page.navigate", {"url": url}, session=session)
    if navigation.get("errorText"):
        raise PlotsError(f"Chromium could not open {url}: {navigation['errorText']}")
    browser.wait_for("Page.loadEventFired", timeout_s, since=before_navigation)
    return session


def _sort_events(events: list[dict[str, Any]]) -> tuple[list[str], list[str], list[str]]:
    """Errors, warnings and remote request URLs among the DevTools events."""
    errors: list[str] = []
    warnings: list[str] = []
    remote: list[str] = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            errors.append(_describe_exception(params["exceptionDetails"]))
        elif method == "Runtime.consoleAPICalled" and params["type"] in CONSOLE_PROBLEMS:
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
            kind = params["type"]
            (warnings if kind == "warning" else errors).append(f"console.{kind}: {text}")
        elif method == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning"):
            entry = params["entry"]
            line = f"{entry['source']} {entry['level']}: {entry['text']} {entry.get('url', '')}"
            line = line.strip()
            (errors if entry["level"] == "error" else warnings).append(line)
        elif method == "Network.requestWillBeSent":
            request_url = params["request"]["url"]
            if not request_url.startswith(LOCAL_SCHEMES):
                remote.append(request_url)
    return errors, warnings, remote


def _describe_exception(details: dict[str, Any]) -> str:
    exception = details.get("exception", {})
    line = details.get("lineNumber", -1) + 1  # CDP counts lines from 0
    where = f"{details.get('url', '')}:{line}"
    return f"uncaught: {exception.get('description') or details.get('text', '')} ({where})"


# --- command line ---------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    """The ``python -m seqlm.ops.plots`` arguments."""
    p = argparse.ArgumentParser(
        prog="python -m seqlm.ops.plots",
        description="Render the plots declared in dvc.yaml to an HTML page that works offline "
                    "(Vega inlined from tools/plots/node_modules, no CDN).",
    )
    p.add_argument("revisions", nargs="*", metavar="REV",
                   help="git revisions (or experiments, with -e) to compare with `dvc plots diff`; "
                        "none: the workspace, with `dvc plots show`")
    p.add_argument("--out", type=Path, default=Path("dvc_plots"),
                   help="folder to write index.html into, relative to --root "
                        "(default: %(default)s)")
    p.add_argument("--root", type=Path, default=Path("."),
                   help="the DVC repository (default: the current directory)")
    p.add_argument("--target", action="append", dest="targets", metavar="PLOT",
                   help="only this plot id or file (repeatable; default: every plot)")
    p.add_argument("-e", "--experiment", action="store_true",
                   help="treat REV as experiment names (dvc plots diff --experiment)")
    p.add_argument("--node-modules", type=Path, default=NODE_MODULES,
                   help="where npm installed vega, vega-lite and vega-embed (default: %(default)s)")
    p.add_argument("--check", action="store_true",
                   help=f"open the page in headless Chromium (${CHROMIUM_ENV}, default "
                        f"{CHROMIUM}) and fail on script errors, requests to the internet or "
                        "plots that drew nothing")
    p.add_argument("--screenshot", type=Path, metavar="PNG",
                   help="with --check: save a screenshot of the page here")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Render (and optionally check) the plots; print the page's path. Exit 1 on any problem."""
    from seqlm.core.logs import setup_logging

    args = build_parser().parse_args(argv)
    setup_logging()
    try:
        index = render_plots(args.root, args.out, args.targets, args.revisions,
                             experiment=args.experiment, node_modules=args.node_modules)
        print(index.as_uri())
        if args.check or args.screenshot:
            report = check_page(index, screenshot=args.screenshot)
            for warning in report.warnings:
                log.warning("page: %s", warning)
            problems = report.problems()
            for problem in problems:
                print(f"error: {problem}", file=sys.stderr)
            if problems:
                return 1
            log.info("checked in Chromium: %d plot(s) drawn, no errors, no remote requests",
                     len(report.plots))
    except SeqlmError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
