"""Simulated browsers on Web Push: subscribe with VAPID, decrypt, and the app server's rules."""

import asyncio
import json
import random
from pathlib import Path

import pytest

from app_server.senders import InvalidNotification, Notification
from app_server.webpush_sender import VapidSigner, WebPushSender, parse_subscription
from devices.browser import BrowserPushDaemon
from fake_providers.webpush import SubscriptionKeys, VapidKeys
from fake_providers.webpush.lab import build_webpush_core
from simulator.core.clock import run_virtual
from simulator.core.http import MemoryTransport
from simulator.core.trace import EventKind
from simulator.outcomes import analyse, check
from simulator.runner import collect, run_scenario, run_world
from simulator.scenario import load_scenario, parse_scenario
from simulator.world import build_world

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "webpush.yaml"

ONE_BROWSER = """
name: one-browser
seed: 3
duration: 10m
devices:
  - id: laptop
    platform: browser
    user: bob
    apps: [{id: chat.example}]
timeline:
  - at: 1m
    send: {user: bob, title: "Hi", body: "from the app server", data: {room: "7"}}
"""


def _world_run(text: str):
    """Run a scenario on virtual time and keep the world, to look inside the browser."""
    scenario = parse_scenario(text)

    async def main():
        world = build_world(scenario, asyncio.get_running_loop())
        result = await collect(world, scenario.duration, None, run_world)
        return world, result

    return run_virtual(main())


def test_browser_subscribes_with_vapid_and_decrypts_what_it_gets() -> None:
    world, result = _world_run(ONE_BROWSER)
    device = world.devices["laptop"]
    daemon = device.daemon
    assert isinstance(daemon, BrowserPushDaemon)
    app = device.apps["chat.example"]
    # the token the app server keeps is the subscription: endpoint and the browser's keys
    sub = json.loads(app.token)
    assert sub["endpoint"].startswith(world.providers.webpush.config.public_url + "/wpush/v2/")
    assert set(sub["keys"]) == {"p256dh", "auth"}
    stored = world.app_server.store.for_device("laptop")[0]
    assert stored.platform == "browser" and stored.token == app.token
    # bound to the app server's VAPID key
    token = sub["endpoint"].rsplit("/", 1)[1]
    assert world.providers.webpush.subscriptions[token].key == world.providers.vapid.public_bytes
    # the payload crossed the push service encrypted and was opened on the device
    [got] = app.received
    assert got.payload == {"title": "Hi", "body": "from the app server", "data": {"room": "7"}}
    accepted = [e for e in result.events if e.kind == EventKind.ACCEPTED]
    assert accepted and accepted[0].data["provider"] == "webpush"
    [delivery] = analyse(result.events).deliveries
    assert delivery.fate == "handed" and delivery.provider == "webpush"
    assert {EventKind.SENT, EventKind.ACCEPTED, EventKind.FORWARDED, EventKind.DELIVERED,
            EventKind.HANDED} <= set(delivery.hops)


def test_the_webpush_scenario_meets_its_expectations() -> None:
    result = run_scenario(load_scenario(SCENARIO))
    assert check(result) == []
    outcome = analyse(result.events)
    by = {(d.device, d.sent_at): d for d in outcome.deliveries}
    # the lid was shut from 5m to 20m: the 10m message waited in the push service
    assert by[("alice-laptop", 600.0)].hops[EventKind.HANDED] >= 1200.0
    # low power: the low-urgency sync waited for the wake-up, the high one did not
    assert by[("alice-phone", 2100.0)].hops[EventKind.HANDED] >= 3600.0
    assert by[("alice-phone", 2160.0)].latency < 1.0
    # a 503 with Retry-After 30: the app server waited at least that long
    [retry] = [e for e in result.events if e.kind == EventKind.RETRY]
    assert retry.status == 503 and retry.delay >= 30
    # unsubscribed: 410 errno 106, the subscription pruned
    [pruned] = [e for e in result.events if e.kind == EventKind.TOKEN_PRUNED]
    assert pruned.data["device"] == "alice-laptop" and "errno 106" in pruned.data["reason"]


def test_same_seed_same_trace(tmp_path) -> None:
    scenario = parse_scenario(ONE_BROWSER)
    run_scenario(scenario, trace_path=tmp_path / "a.jsonl")
    run_scenario(scenario, trace_path=tmp_path / "b.jsonl")
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()


# ---- the sender alone, against the push service's core ------------------------------------
def _service():
    core = build_webpush_core(5, clock=lambda: 0.0)
    core.connect("c1", None)
    vapid = VapidKeys.generate(random.Random(1))
    core.subscribe("c1", "6f1c0e52-7a07-4d7c-9a55-3f3b1e2f0a10", vapid.public_bytes)
    [sub] = core.subscriptions.values()
    keys = SubscriptionKeys.generate(random.Random(2))
    token = json.dumps(keys.subscription_info(core.endpoint(sub)))
    sender = WebPushSender(MemoryTransport(core.handle, latency=0.0),
                           VapidSigner(vapid.private_raw, "mailto:ops@example.org",
                                       core.wall_clock), random.Random(3))
    return core, sub, keys, token, sender


def test_sender_encrypts_to_the_subscription_and_signs_with_vapid() -> None:
    core, sub, keys, token, sender = _service()
    sent = []
    core.on_actions = sent.extend
    result = run_virtual(sender.send(token, Notification(title="T", body="B", ttl_s=60,
                                                         priority="normal")))
    assert result.ok and result.status == 201 and result.provider_msg_id
    [action] = sent
    note = action.message
    assert note["ttl"] == 60
    plain = keys.decrypt(__import__("base64").urlsafe_b64decode(note["data"] + "=="),
                         note["headers"])
    assert json.loads(plain) == {"title": "T", "body": "B"}


def test_sender_marks_404_and_410_dead_so_the_app_server_prunes() -> None:
    core, sub, keys, token, sender = _service()
    core.unsubscribe("c1", sub.channel_id)
    gone = run_virtual(sender.send(token, Notification(title="x")))
    assert gone.status == 410 and gone.token_dead and "errno 106" in gone.reason
    unknown = token.replace(sub.token, "nope")
    missing = run_virtual(sender.send(unknown, Notification(title="x")))
    assert missing.status == 404 and missing.token_dead


def test_sender_reads_retry_after_of_a_503() -> None:
    core, sub, keys, token, sender = _service()
    core.faults.add(status=503, retry_after=42, count=1)
    busy = run_virtual(sender.send(token, Notification(title="x")))
    assert busy.status == 503 and busy.retry_after == 42 and not busy.token_dead


@pytest.mark.parametrize("bad", ["not json", "{}", '{"endpoint": "ftp://x/y", '
                                 '"keys": {"p256dh": "a", "auth": "b"}}'])
def test_a_malformed_subscription_is_refused_before_sending(bad: str) -> None:
    with pytest.raises(InvalidNotification):
        parse_subscription(bad)


def test_a_topic_the_push_service_would_refuse_is_refused_before_sending() -> None:
    core, sub, keys, token, sender = _service()
    with pytest.raises(InvalidNotification, match="Topic"):
        sender.build(token, Notification(title="x", collapse_key="not a topic!"))


# ---- the browser's push client alone (sans-IO) ----------------------------------------------
class FakeLink:
    def __init__(self) -> None:
        self.sent: list[str] = []
        self.closed = False

    def send(self, msg: object) -> bool:
        self.sent.append(str(msg))
        return True

    def close(self) -> None:
        self.closed = True


class FakeIO:
    def __init__(self) -> None:
        self.links: list[FakeLink] = []
        self.timers: list[float] = []
        self.handed: list = []
        self.tokens: list[tuple[str, str]] = []
        self.notices: list = []

    def open_link(self, daemon) -> FakeLink:
        self.links.append(FakeLink())
        return self.links[-1]

    def set_timer(self, when: float) -> None:
        self.timers.append(when)

    def hand_to_app(self, push) -> bool:
        self.handed.append(push)
        return True

    def token_received(self, app_id: str, token: str) -> None:
        self.tokens.append((app_id, token))

    def notice(self, notice) -> None:
        self.notices.append(notice)


class Closed:
    def __init__(self, code: int) -> None:
        self.code = code


def _browser(server_key: str | None = None):
    from fake_providers.webpush import UserAgentClient

    io = FakeIO()
    keys = SubscriptionKeys.generate(random.Random(4))
    daemon = BrowserPushDaemon("b", "browser", io, random.Random(5), UserAgentClient(),
                               lambda: keys, lambda app_id: server_key)
    return daemon, io, keys


def _hello(daemon, io) -> FakeLink:
    link = io.links[-1]
    daemon.on_frame(link, json.dumps({"messageType": "hello", "uaid": "a" * 32,
                                      "status": 200}), 1.0)
    return link


def test_a_site_subscribes_once_the_hello_is_answered_with_its_servers_key() -> None:
    vapid = VapidKeys.generate(random.Random(6)).public_key
    daemon, io, keys = _browser(vapid)
    daemon.register(0.0, "chat")
    daemon.network_changed(0.0, "wifi", "10.0.0.2")
    link = io.links[-1]
    assert [json.loads(m)["messageType"] for m in link.sent] == ["hello"]
    _hello(daemon, io)
    register = json.loads(link.sent[-1])
    assert register["messageType"] == "register" and register["key"] == vapid
    daemon.on_frame(link, json.dumps({"messageType": "register", "status": 200,
                                      "channelID": register["channelID"],
                                      "pushEndpoint": "http://ps/wpush/v2/t"}), 1.1)
    [(app, token)] = io.tokens
    assert app == "chat" and json.loads(token) == keys.subscription_info("http://ps/wpush/v2/t")


def _subscribed(daemon, io):
    daemon.register(0.0, "chat")
    daemon.network_changed(0.0, "wifi", "10.0.0.2")
    link = _hello(daemon, io)
    channel = json.loads(link.sent[-1])["channelID"]
    daemon.on_frame(link, json.dumps({"messageType": "register", "status": 200,
                                      "channelID": channel,
                                      "pushEndpoint": "http://ps/wpush/v2/t"}), 1.1)
    return link, channel


def _encrypted(keys: SubscriptionKeys, text: bytes) -> str:
    import base64

    from pywebpush import WebPusher

    body = WebPusher(keys.subscription_info("http://ps/x")).encode(text)["body"]
    return base64.urlsafe_b64encode(body).decode().rstrip("=")


def test_a_message_that_does_not_decrypt_is_acked_101_and_not_handed() -> None:
    daemon, io, keys = _browser()
    link, channel = _subscribed(daemon, io)
    other = SubscriptionKeys.generate(random.Random(9))
    daemon.on_frame(link, json.dumps({"messageType": "notification", "channelID": channel,
                                      "version": "v1", "ttl": 60,
                                      "data": _encrypted(other, b'{"title":"x"}'),
                                      "headers": {"encoding": "aes128gcm"}}), 2.0)
    assert json.loads(link.sent[-1])["updates"][0]["code"] == 101
    assert io.handed == [] and daemon.undecryptable == 1


def test_a_message_sent_again_after_a_reconnect_is_handed_once() -> None:
    daemon, io, keys = _browser()
    link, channel = _subscribed(daemon, io)
    frame = json.dumps({"messageType": "notification", "channelID": channel, "version": "v1",
                        "ttl": 60, "data": _encrypted(keys, b'{"title":"hi"}'),
                        "headers": {"encoding": "aes128gcm"}})
    daemon.on_frame(link, frame, 2.0)
    daemon.on_frame(link, frame, 2.5)
    assert [json.loads(m)["updates"][0]["code"] for m in link.sent[-2:]] == [100, 100]
    [push] = io.handed
    assert push.payload == {"title": "hi"} and push.app_id == "chat"
    assert daemon.duplicates == 1


def test_close_code_4774_backs_off_longer_than_a_lost_connection() -> None:
    daemon, io, _ = _browser()
    daemon.network_changed(0.0, "wifi", "10.0.0.2")
    _hello(daemon, io)
    daemon.on_link_lost(io.links[-1], 10.0)
    quick = daemon._retry_at - 10.0
    daemon.on_timer(daemon._retry_at)
    _hello(daemon, io)
    daemon.on_frame(io.links[-1], Closed(4774), 100.0)
    assert daemon.state == "backoff" and daemon.backoffs == 1
    assert daemon._retry_at - 100.0 >= 40.0 > quick


OUTAGE = """
name: webpush-outage
seed: 7
duration: 30m
devices:
  - id: lap
    platform: browser
    user: alice
    apps: [{id: chat.example}]
timeline:
  - at: 1m
    outage: {provider: webpush}
  - at: 2m
    send: {user: alice, title: "during"}
  - at: 3m
    reboot: {device: lap}
  - at: 6m
    recover: {provider: webpush}
  - at: 10m
    fault: {provider: webpush, device: lap, status: 429, count: 1, retry_after: 5}
  - at: 11m
    send: {user: alice, title: "after"}
"""


def test_an_outage_refuses_browsers_with_4774_and_senders_with_503_until_it_ends() -> None:
    world, result = _world_run(OUTAGE)
    assert [d.fate for d in analyse(result.events).deliveries] == ["handed", "handed"]
    assert world.devices["lap"].daemon.backoffs >= 1  # the hello during the outage: 4774
    retries = [e.data for e in result.events if e.data.get("what") == "retry"
               or e.kind == "retry"]
    assert [(r["status"], r["retry_after"]) for r in retries][:1] == [(503, 120.0)]
    assert (429, 5.0) in [(r["status"], r["retry_after"]) for r in retries]  # its own token


@pytest.mark.live
def test_live_a_browser_device_keeps_a_real_websocket_and_gets_its_push() -> None:
    short = ONE_BROWSER.replace("duration: 10m", "duration: 2m")
    result = run_scenario(parse_scenario(short), live=True, time_scale=0.02)
    [delivery] = analyse(result.events).deliveries
    assert delivery.fate == "handed" and delivery.provider == "webpush"
    assert any(e.kind == EventKind.CONNECTED and e.data.get("provider") == "webpush"
               for e in result.events)
