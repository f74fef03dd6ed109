"""``pushlab dashboard --web``: the dashboard served to browsers with textual-serve."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from simulator.cli import app

ROOT = Path(__file__).resolve().parents[1]


def test_taken_port_is_one_line_naming_it() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        result = CliRunner().invoke(app, ["dashboard", "--web", "--host", "127.0.0.1",
                                          "--port", str(port)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0] and "--port" in lines[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"nothing listens on {port}")


async def _browse(devtools: int, url: str, want: tuple[str, ...], timeout: float) -> tuple[str, bytes]:
    """Open ``url`` in the browser over the DevTools protocol; what its websocket received
    (the terminal's output) once every one of ``want`` is in it, and a screenshot."""
    import asyncio
    import base64
    import json

    import aiohttp

    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{devtools}/json") as resp:
            page = next(t for t in await resp.json() if t["type"] == "page")
        async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            seq = 0

            async def call(method: str, **params: object) -> None:
                nonlocal seq
                seq += 1
                await ws.send_json({"id": seq, "method": method, "params": params})

            await call("Network.enable")
            await call("Page.navigate", url=url)
            seen = ""
            asked = 0
            deadline = asyncio.get_running_loop().time() + timeout
            async for msg in ws:
                data = json.loads(msg.data)
                if data.get("method") == "Network.webSocketFrameReceived":
                    frame = data["params"]["response"]
                    payload = frame["payloadData"]
                    if frame.get("opcode") == 2:
                        payload = base64.b64decode(payload).decode(errors="replace")
                    seen += payload
                    if not asked and all(w in seen for w in want):
                        await call("Page.captureScreenshot", format="png")
                        asked = seq
                if asked and data.get("id") == asked:
                    return seen, base64.b64decode(data.get("result", {}).get("data", ""))
                if asyncio.get_running_loop().time() > deadline:
                    break
            return seen, b""


@pytest.mark.slow
@pytest.mark.live
@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed "
                    "(scripts/install-brokers.sh installs it)")
def test_headless_chromium_sees_providers_and_battery(tmp_path: Path) -> None:
    import asyncio

    port, devtools = _free_port(), _free_port()
    env = {**os.environ, "COLUMNS": "160", "LINES": "48"}
    server = subprocess.Popen([sys.executable, "-m", "simulator", "dashboard", "--web", "--host",
                               "127.0.0.1", "--port", str(port)], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    browser = None
    try:
        _wait_port(port, time.monotonic() + 20)
        browser = subprocess.Popen(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu",
             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1600,1000",
             f"--remote-debugging-port={devtools}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(devtools, time.monotonic() + 20)
        seen, shot = asyncio.run(_browse(devtools, f"http://127.0.0.1:{port}/",
                                         ("APNs", "FCM", "attery"), 30.0))
    finally:
        for proc in (browser, server):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=10)
    for word in ("APNs", "FCM", "attery"):
        assert word in seen, f"{word!r} never reached the browser"
    # a painted dashboard, not the loading screen (about 15 kB of flat colour)
    assert shot.startswith(b"\x89PNG") and len(shot) > 60_000
    (tmp_path / "dashboard.png").write_bytes(shot)
