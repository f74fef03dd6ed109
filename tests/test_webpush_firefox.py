"""A real, unmodified browser as the device: headless Firefox ESR on the lab's Web Push.

Firefox's push client is pointed at the lab's websocket with ``dom.push.serverURL``;
a page served here registers a service worker and subscribes with the app server's
VAPID key; the subscription goes to PushLab's app server, which sends through its
Web Push sender; the service worker's ``push`` event reports the decrypted text back.
Then the site unsubscribes in Firefox, and the app server's next send gets 410 and prunes.
The notification permission is granted by the profile
(``permissions.default.desktop-notification``), as browser automation does.
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from aiohttp import web

from app_server.senders import Notification
from app_server.service import AppServer
from app_server.webpush_sender import VapidSigner, WebPushSender
from fake_providers.webpush.core import WebPushCore
from fake_providers.webpush.keys import VapidKeys
from fake_providers.webpush.lab import build_webpush_core
from fake_providers.webpush.server import start_webpush_server
from simulator.core.http import HttpxTransport
from simulator.core.trace import Trace

pytestmark = [pytest.mark.live, pytest.mark.slow]
FIREFOX = shutil.which("firefox-esr") or shutil.which("firefox")
WAIT_S = 40.0

PAGE = """<!doctype html><meta charset="utf-8"><title>PushLab web app</title><script>
async function log(text) { await fetch('/log', {method: 'POST', body: String(text)}); }
async function main() {
  const reg = await navigator.serviceWorker.register('/sw.js');
  await navigator.serviceWorker.ready;
  await log('service worker ready, permission ' + Notification.permission);
  await fetch('/push-ready');  // answered once Firefox's push client said hello to the lab
  let sub = null;
  for (let attempt = 1; sub === null && attempt <= 4; attempt++) {
    sub = await Promise.race([
      reg.pushManager.subscribe({userVisibleOnly: true, applicationServerKey: '%KEY%'}),
      new Promise(resolve => setTimeout(() => resolve(null), 5000))]);
    if (sub === null) await log('subscribe() still pending after attempt ' + attempt);
  }
  await fetch('/subscription', {method: 'POST', body: JSON.stringify(sub)});
}
main().catch(e => log('error ' + e));
</script>"""

SERVICE_WORKER = """self.addEventListener('push', event => {
  const text = event.data ? event.data.text() : '';
  const leave = text.includes('"unsubscribe"') ?
    self.registration.pushManager.getSubscription().then(s => s.unsubscribe()) :
    Promise.resolve(false);
  event.waitUntil(leave.then(left => fetch('/report', {method: 'POST',
                                                       body: left ? 'unsubscribed' : text}))
    .then(() => self.registration.showNotification('PushLab', {body: text}).catch(() => null)));
});"""

# Firefox's push client aimed at the lab; everything that would call the internet, off.
PREFS = {
    "dom.push.enabled": True, "dom.push.connection.enabled": True,
    "dom.push.testing.allowInsecureServerURL": True, "dom.push.loglevel": "debug",
    "dom.serviceWorkers.enabled": True, "dom.serviceWorkers.testing.enabled": True,
    "permissions.default.desktop-notification": 1,
    "browser.dom.window.dump.enabled": True, "devtools.console.stdout.chrome": True,
    "browser.shell.checkDefaultBrowser": False, "browser.aboutwelcome.enabled": False,
    "browser.startup.homepage_override.mstone": "ignore", "app.update.disabledForTesting": True,
    "datareporting.policy.dataSubmissionEnabled": False, "toolkit.telemetry.enabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "network.connectivity-service.enabled": False,
    "network.captive-portal-service.enabled": False, "browser.region.network.url": "",
    "services.settings.server": "http://127.0.0.1:9/", "extensions.update.enabled": False,
    "browser.safebrowsing.malware.enabled": False, "browser.safebrowsing.phishing.enabled": False,
    "browser.newtabpage.enabled": False,
}


def write_profile(folder: Path, server_url: str) -> Path:
    """A fresh profile whose user.js points ``dom.push.serverURL`` at ``server_url``."""
    folder.mkdir(parents=True, exist_ok=True)
    prefs = {**PREFS, "dom.push.serverURL": server_url}
    (folder / "user.js").write_text("".join(f"user_pref({json.dumps(k)}, {json.dumps(v)});\n"
                                            for k, v in prefs.items()), encoding="utf-8")
    return folder


class WebApp:
    """The site: its page and service worker, and the endpoints they report to."""

    def __init__(self, vapid_key: str, app_server: AppServer, core: WebPushCore) -> None:
        self.vapid_key = vapid_key
        self.core = core
        self.app_server = app_server
        self.subscribed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.reports: asyncio.Queue[str] = asyncio.Queue()
        self.log: list[str] = []

    def routes(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self.page)
        app.router.add_get("/sw.js", self.worker)
        app.router.add_get("/push-ready", self.push_ready)
        app.router.add_post("/subscription", self.subscription)
        app.router.add_post("/report", self.report)
        app.router.add_post("/log", self.note)
        return app

    async def page(self, _: web.Request) -> web.Response:
        return web.Response(text=PAGE.replace("%KEY%", self.vapid_key), content_type="text/html")

    async def worker(self, _: web.Request) -> web.Response:
        return web.Response(text=SERVICE_WORKER, content_type="application/javascript")

    async def push_ready(self, _: web.Request) -> web.Response:
        """A ``subscribe()`` made before Firefox's push service has started can stay
        pending at ``askPermission()`` for good (seen in its push log): wait for the hello."""
        async with asyncio.timeout(WAIT_S):
            while not self.core.uaid_conn:
                await asyncio.sleep(0.05)
        return web.Response(text="ok")

    async def subscription(self, request: web.Request) -> web.Response:
        """What the site's back end does: store the subscription with the app server."""
        token = await request.text()
        await self.app_server.register_token(user="alice", device_id="firefox",
                                             app_id="chat.example", platform="browser",
                                             token=token)
        if not self.subscribed.done():
            self.subscribed.set_result(token)
        return web.Response(text="ok")

    async def report(self, request: web.Request) -> web.Response:
        await self.reports.put(await request.text())
        return web.Response(text="ok")

    async def note(self, request: web.Request) -> web.Response:
        self.log.append(await request.text())
        return web.Response(text="ok")


async def _serve(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


def _push_log(path: Path) -> str:
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    return "\n".join(line for line in lines if "Push" in line or "error" in line.lower())[-3000:]


@pytest.mark.skipif(FIREFOX is None, reason="firefox-esr is not installed "
                    "(scripts/install-brokers.sh installs it)")
async def test_firefox_subscribes_and_its_service_worker_decrypts_the_app_servers_push(
        tmp_path) -> None:
    core = build_webpush_core(11, wall_clock=time.time)
    service = await start_webpush_server(core)
    vapid = VapidKeys.generate()
    transport = HttpxTransport(service.url, http2=False)
    loop = asyncio.get_running_loop()
    sender = WebPushSender(transport, VapidSigner(vapid.private_raw, "mailto:ops@pushlab.test",
                                                  time.time), random.Random())
    app_server = AppServer({"browser": sender}, loop.time, Trace(loop.time))
    site = WebApp(vapid.public_key, app_server, core)
    runner, port = await _serve(site.routes())
    log_path = tmp_path / "firefox.log"
    profile = write_profile(tmp_path / "profile", service.ws_url)
    with log_path.open("w") as log:
        firefox = subprocess.Popen([FIREFOX, "--headless", "--no-remote", "--profile",
                                    str(profile), f"http://127.0.0.1:{port}/"],
                                   stdout=log, stderr=subprocess.STDOUT)
    try:
        try:
            token = await asyncio.wait_for(site.subscribed, WAIT_S)
        except TimeoutError:
            pytest.fail(f"Firefox never posted a subscription; page said {site.log}; "
                        f"push log:\n{_push_log(log_path)}")
        sub = json.loads(token)
        assert sub["endpoint"].startswith(f"{service.url}/wpush/v2/")
        [subscription] = core.subscriptions.values()
        assert subscription.key == vapid.public_bytes  # bound to the applicationServerKey
        [result] = await app_server.send_to_device(
            "firefox", Notification(title="Hello from PushLab", body="decrypted in Firefox"))
        assert result.status == 201 and result.ok, result
        try:
            text = await asyncio.wait_for(site.reports.get(), WAIT_S)
        except TimeoutError:
            pytest.fail(f"the service worker never reported a push; push log:\n"
                        f"{_push_log(log_path)}")
        assert json.loads(text) == {"title": "Hello from PushLab",
                                    "body": "decrypted in Firefox"}
        assert not core.store.pending(subscription.uaid)  # Firefox acked it
        # the site unsubscribes (its service worker, on the app server's word): 410, pruned
        await app_server.send_to_device("firefox", Notification(title="unsubscribe"))
        assert await asyncio.wait_for(site.reports.get(), WAIT_S) == "unsubscribed"
        for _ in range(100):  # the unregister frame reaches the push service
            if subscription.state != "active":
                break
            await asyncio.sleep(0.05)
        [gone] = await app_server.send_to_device("firefox", Notification(title="still there?"))
        assert gone.status == 410 and gone.token_dead, gone
        assert app_server.store.for_device("firefox")[0].token is None
    finally:
        firefox.terminate()
        try:
            firefox.wait(10)
        except subprocess.TimeoutExpired:
            firefox.kill()
        await transport.aclose()
        await runner.cleanup()
        await service.close()
