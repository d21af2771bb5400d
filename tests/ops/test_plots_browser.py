"""The plots page: built from tools/plots/node_modules, rendered by dvc, checked in Chromium.

The fast tests use a stand-in node_modules. The slow ones run the real pipeline on the tiny corpus,
render its plots with ``dvc plots show`` / ``dvc plots diff``, and open the page in headless
Chromium through Playwright. They fail (they never skip) where Chromium, Playwright or the npm
packages are missing: ``make setup-dev`` installs them (Chromium from Debian's packages, Playwright
from requirements-dev.lock, Vega with ``npm ci --prefix tools/plots``).
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from seqlm.ops.plots import (
    BUNDLES,
    NODE_MODULES,
    PlotsError,
    dvc_render_versions,
    offline_template,
    plots_command,
    render_plots,
)
from seqlm.ops.plots_check import (
    CHROMIUM_HINT,
    PageCheck,
    PlotState,
    check_and_report,
    check_page,
    chromium_path,
)

REPO_ROOT = Path(__file__).resolve().parents[2]

# vega-embed 6.18.2's version check warns on DVC's "v5" schemas with the CDN page too (see
# frictionlessdata/livemark#119); DVC's linear template has a hover layer that starts empty.
# Anything else the page warns about is a failure.
KNOWN_WARNINGS = (
    r"console\.warning: The (input|compiled) spec uses Vega(-Lite)? v5, but (the )?current version",
    r"console\.warning: WARN Infinite extent for field",
    # DVC's bar_horizontal template binds zoom to a scale with a discrete domain (the systems)
    r"console\.warning: WARN Scale bindings are currently only supported for scales with unbinned",
)


# --- fast: the template, from a stand-in node_modules ---------------------------------------------


@pytest.fixture
def fake_node_modules(tmp_path: Path) -> Path:
    """A node_modules holding the three packages at dvc-render's versions, bundles of one line."""
    root = tmp_path / "node_modules"
    for package, version in dvc_render_versions().items():
        (root / package / "build").mkdir(parents=True)
        manifest = {"name": package, "version": version}
        (root / package / "package.json").write_text(json.dumps(manifest))
        flag = package.replace("-", "_")
        (root / package / BUNDLES[package]).write_text(
            f"window.loaded_{flag} = true;\n//# sourceMappingURL={package}.min.js.map\n"
        )
    return root


def test_offline_template_inlines_the_three_libraries_and_leaves_dvc_no_place_for_cdn_tags(
    fake_node_modules: Path,
):
    page = offline_template(fake_node_modules)
    assert "{plot_divs}" in page and "{scripts}" not in page
    assert "cdn.jsdelivr" not in page and "<script src" not in page
    for package, version in dvc_render_versions().items():
        assert f"/* {package}@{version} " in page
        assert f"window.loaded_{package.replace('-', '_')} = true;" in page
    assert "sourceMappingURL" not in page
    assert page.index("vega-lite@") < page.index("vega-embed@") < page.index("window.seqlmPlots")


def test_missing_node_modules_is_an_error_that_says_to_run_npm_ci(tmp_path: Path):
    with pytest.raises(PlotsError, match=r"npm ci --prefix tools/plots"):
        offline_template(tmp_path / "node_modules")


def test_a_missing_bundle_is_an_error_that_names_the_package(fake_node_modules: Path):
    (fake_node_modules / "vega-embed" / BUNDLES["vega-embed"]).unlink()
    with pytest.raises(PlotsError, match=r"vega-embed is not installed.*npm ci"):
        offline_template(fake_node_modules)


def test_a_bundle_that_would_close_its_script_tag_is_refused(fake_node_modules: Path):
    (fake_node_modules / "vega" / BUNDLES["vega"]).write_text('var s = "</script>";\n')
    with pytest.raises(PlotsError, match="cannot be inlined"):
        offline_template(fake_node_modules)


def test_tools_plots_pins_exactly_the_versions_dvc_render_loads_from_the_cdn():
    tools = REPO_ROOT / "tools" / "plots"
    pinned = json.loads((tools / "package.json").read_text())["dependencies"]
    locked = json.loads((tools / "package-lock.json").read_text())["packages"]
    wanted = dvc_render_versions()
    assert set(wanted) == set(BUNDLES)
    assert pinned == wanted
    assert {name: locked[f"node_modules/{name}"]["version"] for name in wanted} == wanted


def test_plots_diff_gets_revisions_before_the_targets_option():
    cmd = plots_command(Path("/out"), Path("/t.html"), ["zipf"], revisions=["HEAD~1", "HEAD"])
    assert cmd[1:7] == ["-m", "dvc", "plots", "diff", "HEAD~1", "HEAD"]
    assert cmd[-2:] == ["--targets", "zipf"]
    show = plots_command(Path("/out"), Path("/t.html"))
    assert show[4:] == ["show", "--html-template", "/t.html", "--out", "/out"]


def test_a_page_check_lists_every_plot_that_did_not_draw_and_every_remote_request():
    drawn = PlotState("zipf", None, marks=3, data={}, drawn=[])
    check = PageCheck(
        "file:///index.html",
        errors=["console.error: boom"],
        remote_requests=["https://cdn.jsdelivr.net/npm/vega@5"],
        plot_divs=["zipf", "empty", "broken", "missing"],
        plots={
            "zipf": drawn,
            "empty": PlotState("empty", None, marks=0, data={}, drawn=[]),
            "broken": PlotState("broken", "Error: bad spec", marks=0, data={}, drawn=[]),
        },
    )
    assert check.problems() == [
        "console.error: boom",
        "request left the machine: https://cdn.jsdelivr.net/npm/vega@5",
        "plot 'empty' drew no marks",
        "plot 'broken' failed: Error: bad spec",
        "plot 'missing' was never embedded (its script did not run)",
    ]
    assert PageCheck("file:///index.html").problems() == ["the page holds no plot"]


def test_a_missing_chromium_is_an_error_that_says_how_to_install_it(tmp_path):
    page = tmp_path / "index.html"
    page.write_text("<html></html>")
    with pytest.raises(PlotsError, match=r"apt-get install -y chromium"):
        check_page(page, chromium=str(tmp_path / "no-such-chromium"))


# --- slow: the real pipeline, dvc and Chromium ----------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> str:
    """Chromium and the npm packages, or a failure that says how to install them."""
    chromium = chromium_path()
    if shutil.which(chromium) is None:
        pytest.fail(f"Chromium not found at {chromium}: {CHROMIUM_HINT}")
    if not (NODE_MODULES / "vega-embed" / BUNDLES["vega-embed"]).is_file():
        pytest.fail(f"Vega is not installed in {NODE_MODULES}: run `npm ci --prefix tools/plots`")
    return chromium


def unexpected_warnings(check: PageCheck) -> list[str]:
    return [w for w in check.warnings if not any(re.match(known, w) for known in KNOWN_WARNINGS)]


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def dvc_yaml_plot(root: Path, plot_id: str) -> dict:
    plots = yaml.safe_load((root / "dvc.yaml").read_text())["plots"]
    return next(entry[plot_id] for entry in plots if plot_id in entry)


def declared_plot_ids(root: Path) -> set[str]:
    """The div id of every plot dvc.yaml declares: top-level plot ids, and each stage's plot files
    with every character but letters and digits made ``_`` (as dvc-render names them)."""
    dvc_yaml = yaml.safe_load((root / "dvc.yaml").read_text())
    ids = {next(iter(entry)) for entry in dvc_yaml.get("plots", []) if isinstance(entry, dict)}
    files = [entry for entry in dvc_yaml.get("plots", []) if isinstance(entry, str)]
    for stage in dvc_yaml["stages"].values():
        files += [next(iter(p)) if isinstance(p, dict) else p for p in stage.get("plots", [])]
    return ids | {re.sub(r"[^A-Za-z0-9]", "_", path) for path in files}


def ngram_plot_y_label(root: Path) -> str:
    """The y label dvc.yaml gives metrics/ngram_orders.csv: Vega-Lite describes points by it."""
    plots = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]["ngram"]["plots"]
    orders = "metrics/ngram_orders.csv"
    return next(p[orders] for p in plots if isinstance(p, dict) and orders in p)["y_label"]


def assert_loads_cleanly(check: PageCheck) -> None:
    assert check.problems() == []
    assert check.errors == [] and check.remote_requests == []
    assert unexpected_warnings(check) == []


def assert_zipf_draws_every_rank_and_count(check: PageCheck, root: Path) -> None:
    """Each frequency table is one line whose points are exactly the table's (rank, count) rows."""
    zipf, spec = check.plots["zipf"], dvc_yaml_plot(root, "zipf")
    assert zipf.marks == len(spec["y"])
    drawn = zipf.drawn_fields()
    for table in spec["y"]:
        expected = {(row["rank"], row["count"]) for row in read_csv(root / table)}
        name = Path(table).name
        got = {(d["rank"], d[spec["y_label"]]) for d in drawn if d["filename"] == name}
        assert got == expected, name


@pytest.mark.slow
def test_page_renders_every_declared_plot_offline_with_its_data(browser, baseline, tmp_path):
    dvc_project = baseline  # the whole tiny pipeline, reproduced: every declared plot has its data
    index = render_plots(dvc_project.root, Path("dvc_plots"))
    shot = tmp_path / "plots.png"
    check = check_page(index, chromium=browser, screenshot=shot)

    assert "cdn.jsdelivr" not in index.read_text()
    assert_loads_cleanly(check)
    assert set(check.plot_divs) == declared_plot_ids(dvc_project.root)
    assert {"learning_curves", "zipf", "metrics_ngram_orders_csv"} <= set(check.plot_divs)
    assert_zipf_draws_every_rank_and_count(check, dvc_project.root)
    unigrams = read_csv(dvc_project.root / "data/freq/unigrams.csv")
    assert ("1", unigrams[0]["count"]) in {(r["rank"], r["count"]) for r in check.rows("zipf")}

    orders = read_csv(dvc_project.root / "metrics/ngram_orders.csv")
    ngram = check.plots["metrics_ngram_orders_csv"]
    assert ngram.marks > 0
    y_label = ngram_plot_y_label(dvc_project.root)
    line = {(d["order"], d[y_label]) for d in ngram.drawn_fields() if y_label in d}
    assert {(r["order"], r["val_perplexity"]) for r in orders} <= line

    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000, shot


@pytest.mark.slow
def test_plots_diff_draws_the_committed_and_the_workspace_revision(browser, dvc_project):
    dvc_project.dvc("repro", "corpus")
    dvc_project.git("add", "-A")
    dvc_project.git("commit", "-qm", "reproduced")
    index = render_plots(dvc_project.root, Path("dvc_plots"), targets=["zipf"], revisions=["HEAD"])
    check = check_page(index, chromium=browser)

    assert_loads_cleanly(check)
    assert check.plot_divs == ["zipf"]
    assert {d["rev"] for d in check.plots["zipf"].drawn_fields()} == {"HEAD", "workspace"}


@pytest.mark.slow
def test_the_check_fails_the_cdn_page_dvc_writes_by_default(browser, tmp_path, capsys):
    from dvc_render import render_html
    from dvc_render.vega import VegaRenderer

    points = [{"rank": "1", "count": "9"}, {"rank": "2", "count": "4"}]
    renderer = VegaRenderer(points, "zipf", x="rank", y="count")
    index = Path(render_html([renderer], tmp_path / "dvc_plots" / "index.html"))
    check = check_page(index, chromium=browser)

    assert any("cdn.jsdelivr.net/npm/vega@" in url for url in check.remote_requests)
    assert any("not rendered with seqlm's template" in error for error in check.errors)
    assert check.problems()
    assert check_and_report(index) == 1  # what `seqlm plots --check` runs
    assert "error: request left the machine: https://cdn.jsdelivr.net/" in capsys.readouterr().err
