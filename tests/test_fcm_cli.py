"""``pushlab fcm credentials``, ``pushlab serve fcm`` and ``pushlab bench fcm`` (short run)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from simulator.cli import app


def test_credentials_writes_a_service_account(tmp_path: Path) -> None:
    out = tmp_path / "sa.json"
    runner = CliRunner()
    result = runner.invoke(app, ["fcm", "credentials", "--out", str(out), "--token-uri",
                                 "http://127.0.0.1:8123/token", "--project", "p9"])
    assert result.exit_code == 0, result.output
    info = json.loads(out.read_text())
    assert info["project_id"] == "p9" and info["token_uri"] == "http://127.0.0.1:8123/token"
    assert info["private_key"].startswith("-----BEGIN PRIVATE KEY-----")
    again = runner.invoke(app, ["fcm", "credentials", "--out", str(out)])
    assert again.exit_code == 1  # no silent overwrite


@pytest.mark.live
def test_serve_fcm_runs_and_answers(tmp_path: Path) -> None:
    sa = tmp_path / "sa.json"
    proc = subprocess.Popen(
        [sys.executable, "-c", "from simulator.cli import main; main()", "serve", "fcm",
         "--port", "0", "--credentials", str(sa)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        info = json.loads(line)
        assert info["token_uri"].startswith("http://127.0.0.1:")
        assert json.loads(sa.read_text())["token_uri"] == info["token_uri"]
        health = httpx.get(info["admin"], timeout=10)
        assert health.json()["ok"] is True
        resp = httpx.post(info["send"], json={"message": {"topic": "t"}}, timeout=10)
        assert resp.status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.live
def test_bench_fcm_short_run_reports_every_key() -> None:
    from simulator.benchmarks.fcm import run

    result = run(concurrency=4, seconds=0.3, runs=1, warmup=0.1)
    for key in ("lab_per_s", "bare_per_s", "ratio", "p50_ms", "p99_ms"):
        assert key in result
    assert result["lab_per_s"] > 0 and result["bare_per_s"] > 0
    assert result["lab_errors"] == 0
