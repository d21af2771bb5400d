"""``seqlm serve``'s command line: which models it serves, its refusals (exit 2), and the real
command serving on a free port of 127.0.0.1."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import torch

from seqlm.core.errors import ParamError
from seqlm.ops.cli import main as seqlm_main
from seqlm.serve import cap_threads, is_loopback, load_models, main, parse_model, run_models


def test_a_run_folder_serves_its_model_ngram_and_ensemble(run_dir):
    assert [(name, path.relative_to(run_dir).as_posix()) for name, path in run_models(run_dir)] == [
        (None, "data/model"),
        ("ngram", "data/ngram"),
        ("ensemble", "data/ensemble.json"),
    ]
    models = load_models(run_dir, [])
    assert {name: lm.kind for name, lm in models.items()} == {
        "lstm": "neural",
        "ngram": "ngram",
        "ensemble": "ensemble",
    }


def test_only_the_models_present_are_served(run_dir, tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "ngram").symlink_to(run_dir / "data" / "ngram")
    assert list(load_models(tmp_path, [])) == ["ngram"]


def test_model_options_replace_the_run_unless_run_is_given(run_dir):
    ngram = str(run_dir / "data" / "ngram" / "model.npz")
    assert list(load_models(None, [f"kn={ngram}"])) == ["kn"]
    assert list(load_models(run_dir, [f"kn={ngram}"])) == ["lstm", "ngram", "ensemble", "kn"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [("lstm", "not NAME=PATH"), ("lstm=", "not NAME=PATH"), ("a b=x", "must be letters")],
)
def test_a_bad_model_option_says_what_is_expected(spec, message):
    with pytest.raises(ParamError, match=message):
        parse_model(spec)


def test_serving_nothing_is_an_error_naming_what_was_looked_for(tmp_path, capsys):
    assert main(["--run", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no model found in" in err
    assert "data/model, data/ngram, data/ensemble.json" in err and "--model NAME=PATH" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "x=/no/such/model.pt"], "does not exist"),
        (["--model", "oops"], "not NAME=PATH"),
        (["--max-chars", "0"], "must be >= 1"),
        (["--timeout", "0"], "--timeout 0.0 must be > 0"),
        (["--port", "70000"], "not a port"),
    ],
)
def test_bad_options_exit_2_with_a_message(args, message, capsys):
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_two_models_of_one_name_are_refused(run_dir, capsys):
    ngram = str(run_dir / "data" / "ngram")
    assert main(["--run", str(run_dir), "--model", f"ngram={ngram}"]) == 2
    assert "two models are named 'ngram'" in capsys.readouterr().err


def test_a_port_in_use_is_an_error(run_dir, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["--run", str(run_dir), "--port", str(port)]) == 2
    assert "error:" in capsys.readouterr().err


def test_threads_caps_torch():
    before = torch.get_num_threads()
    try:
        cap_threads(1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_only_loopback_hosts_count_as_local():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")


def test_seqlm_serve_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as exit_:
        seqlm_main(["serve", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for option in ("--run", "--model", "--host", "--port", "--max-chars", "--max-tokens"):
        assert option in out
    assert "--timeout" in out and "--threads" in out


def test_the_command_serves_on_a_free_port_and_stops_on_ctrl_c(run_dir):
    """The real ``seqlm serve`` (the ``seqlm`` entry point's module), as a user starts it."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "seqlm.ops.cli", "serve", "--run", str(run_dir), "--port", "0"]
    proc = subprocess.Popen(
        [*cmd, "--max-tokens", "20"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        line = proc.stdout.readline()
        match = re.search(r"at (http://127\.0\.0\.1:\d+/) ", line)
        assert match, line
        url = match.group(1)
        assert "lstm (neural), ngram (ngram), ensemble (ensemble)" in line
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(f"{url}healthz", timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the server never answered"
                time.sleep(0.1)
        assert health.json()["models"] == ["lstm", "ngram", "ensemble"]
        assert httpx.get(f"{url}api/models").json()["limits"]["max_tokens"] == 20
        r = httpx.post(f"{url}api/generate", json={"max_tokens": 21})
        assert r.status_code == 422 and "limit of 20" in r.json()["error"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
