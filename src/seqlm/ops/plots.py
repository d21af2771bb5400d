"""Render ``dvc.yaml``'s plots to an HTML page that works offline.

``dvc plots show`` writes ``index.html`` with ``<script>`` tags that fetch Vega, Vega-Lite and
Vega-Embed from cdn.jsdelivr.net; offline (CI, air-gapped machines) that page stays blank.
dvc-render only inserts those tags where the page template says ``{scripts}``, so
:func:`offline_template` builds a template without that placeholder and with the three libraries
inlined instead, read from ``tools/plots/node_modules`` (``npm ci --prefix tools/plots`` installs
them, pinned by ``tools/plots/package-lock.json`` to the versions dvc-render asks the CDN for).

:func:`render_plots` runs ``dvc plots show`` (or ``dvc plots diff REV ...``) with that template
(the command line: :mod:`seqlm.ops.dvc_plots`); :mod:`seqlm.ops.plots_check` opens the result in
headless Chromium (``--check``)::

    python -m seqlm.ops.plots --out dvc_plots --check            # the workspace's plots
    python -m seqlm.ops.plots --out dvc_plots HEAD~1 HEAD        # compare two commits
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from seqlm.core.errors import SeqlmError
from seqlm.ops.dvc_plots import PlotsError, dvc_plots_command, run_dvc

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[3]
NODE_MODULES = REPO_ROOT / "tools" / "plots" / "node_modules"
INSTALL_HINT = "run `npm ci --prefix tools/plots` in the seqlm checkout (needs node and npm)"

# package -> the built browser bundle jsdelivr serves for it (the package's "jsdelivr" field)
BUNDLES: dict[str, str] = {
    "vega": "build/vega.min.js",
    "vega-lite": "build/vega-lite.min.js",
    "vega-embed": "build/vega-embed.min.js",
}

# dvc-render fills these by plain string replacement over the whole template, inlined JS included
PLACEHOLDERS = ("{scripts}", "{plot_divs}", "{refresh_tag}")


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
        raise PlotsError(
            f"{package} is not installed under {node_modules} (no {code_path.name}): {INSTALL_HINT}"
        )
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
                log.warning(
                    "%s@%s is installed but dvc-render uses %s@%s: update "
                    "tools/plots/package.json and run npm install there",
                    package,
                    installed,
                    package,
                    wanted,
                )


# --- dvc plots show / diff ------------------------------------------------------------------------


def plots_command(
    out_dir: Path,
    template: Path,
    targets: Sequence[str] | None = None,
    revisions: Sequence[str] | None = None,
    experiment: bool = False,
) -> list[str]:
    """The dvc command line that renders the page: ``plots show``, or ``plots diff`` given
    revisions (:func:`dvc_plots_command`)."""
    options = ["--html-template", str(template), "--out", str(out_dir)]
    return dvc_plots_command(options, targets, revisions, experiment)


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
        proc = run_dvc(cmd, root)
    if not index.is_file():
        raise PlotsError(
            f"dvc wrote no {index}: no plot could be loaded "
            f"(run `dvc repro` first?)\n{proc.stderr.strip()}"
        )
    return index


# --- command line ---------------------------------------------------------------------------------


def build_parser(prog: str = "python -m seqlm.ops.plots") -> argparse.ArgumentParser:
    """The ``python -m seqlm.ops.plots`` (``seqlm plots``) arguments."""
    p = argparse.ArgumentParser(
        prog=prog,
        description="Render the plots declared in dvc.yaml to an HTML page that works offline "
        "(Vega inlined from tools/plots/node_modules, no CDN).",
    )
    p.add_argument(
        "revisions",
        nargs="*",
        metavar="REV",
        help="git revisions (or experiments, with -e) to compare with `dvc plots diff`; "
        "none: the workspace, with `dvc plots show`",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("dvc_plots"),
        help="folder to write index.html into, relative to --root (default: %(default)s)",
    )
    p.add_argument(
        "--root",
        type=Path,
        default=Path("."),
        help="the DVC repository (default: the current directory)",
    )
    p.add_argument(
        "--target",
        action="append",
        dest="targets",
        metavar="PLOT",
        help="only this plot id or file (repeatable; default: every plot)",
    )
    p.add_argument(
        "-e",
        "--experiment",
        action="store_true",
        help="treat REV as experiment names (dvc plots diff --experiment)",
    )
    p.add_argument(
        "--node-modules",
        type=Path,
        default=NODE_MODULES,
        help="where npm installed vega, vega-lite and vega-embed (default: %(default)s)",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="open the page in headless Chromium ($SEQLM_CHROMIUM, default "
        "/usr/bin/chromium, driven by Playwright) and fail on script errors, "
        "requests to the internet or plots that drew nothing",
    )
    p.add_argument(
        "--svg",
        type=Path,
        metavar="DIR",
        help="also write each plot as DIR/<plot id>.svg (headless Vega in Node; relative to --root)",
    )
    p.add_argument(
        "--screenshot",
        type=Path,
        metavar="PNG",
        help="with --check: save a screenshot of the page here",
    )
    return p


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Render (and optionally check) the plots; print the page's path. Exit 1 on any problem."""
    from seqlm.core.logs import setup_logging

    args = build_parser(prog or "python -m seqlm.ops.plots").parse_args(argv)
    setup_logging()
    try:
        index = render_plots(
            args.root,
            args.out,
            args.targets,
            args.revisions,
            experiment=args.experiment,
            node_modules=args.node_modules,
        )
        print(index.as_uri())
        if args.svg:
            from seqlm.ops.plots_svg import write_svgs

            for svg in write_svgs(
                args.root, args.svg, args.targets, args.revisions, experiment=args.experiment
            ):
                print(svg)
        if args.check or args.screenshot:
            from seqlm.ops.plots_check import check_and_report

            return check_and_report(index, screenshot=args.screenshot)
    except SeqlmError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
