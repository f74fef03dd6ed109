"""``pushlab serve apns``: ids differ from one start to the next unless ``--seed`` is given."""

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.live
PUSHLAB = Path(sys.executable).with_name("pushlab")


def _ids_of_one_start(tmp_path: Path, *extra: str) -> list[str]:
    """Start the server, send two pushes to a malformed token, return the apns-ids."""
    (tmp_path / "keys").mkdir(exist_ok=True)
    proc = subprocess.Popen([str(PUSHLAB), "serve", "apns", "--h2c", "--port", "0",
                             "--sandbox-port", "0", "--admin-port", "0", "--keys-dir",
                             str(tmp_path / "keys"), "--no-auth", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "HOME": str(tmp_path)})
    try:
        url = None
        for line in proc.stdout:
            if line.startswith("APNs production"):
                url = line.split()[-1]
                break
        assert url, "the server printed no URL"
        with httpx.Client(http1=False, http2=True, timeout=10) as client:
            ids = [client.post(f"{url}/3/device/{'ab' * 32}", json={"aps": {"alert": "x"}},
                               headers={"apns-topic": "com.example.chat"}).headers["apns-id"]
                   for _ in range(2)]
    finally:
        proc.terminate()
        proc.wait(10)
    return ids


@pytest.mark.slow
def test_two_starts_without_a_seed_never_hand_out_the_same_ids(tmp_path):
    first = _ids_of_one_start(tmp_path)
    second = _ids_of_one_start(tmp_path)
    assert len(set(first + second)) == 4


@pytest.mark.parametrize(("command", "body"), [
    (["apns", "--h2c", "--port", "0", "--sandbox-port", "0", "--admin-port", "0"],
     "simulator.commands.apns.serve_apns"),
    (["fcm", "--port", "0"], "simulator.commands.fcm.serve_command")])
def test_a_given_seed_is_kept_and_no_seed_is_new_each_start(command, body, monkeypatch,
                                                            tmp_path):
    from typer.testing import CliRunner

    from simulator.cli import app

    seeds = []
    monkeypatch.setattr(body, lambda *args, **kw: seeds.append(args[10] if "apns" in body
                                                               else args[4]))
    monkeypatch.chdir(tmp_path)
    for extra in ([], [], ["--seed", "7"], ["--seed", "7"]):
        out = CliRunner().invoke(app, ["serve", *command, *extra])
        assert out.exit_code == 0, out.output
    assert seeds[2:] == [7, 7] and seeds[0] != seeds[1]
