"""Topic names, presence payloads and the brokers' access rules; Mosquitto with the lab's files."""

from __future__ import annotations

import base64
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from amqtt.contexts import Action
from test_mqtt_abuse import Raw, publish_packet

from simulator.core import devicelink as dl
from simulator.live.broker import (
    DeviceAuthPlugin,
    EmbeddedBroker,
    ExternalBroker,
    device_may,
    device_password,
    gateway_may,
    open_broker,
)
from simulator.live.mosquitto_auth import config_lines, password_line, write_auth_files
from simulator.load.brokers import find_binary, free_port, wait_port


def test_topic_names_round_trip() -> None:
    assert dl.down_topic("apns", "d1") == "pushlab/apns/d1/down"
    assert dl.up_topic("fcm", "d1") == "pushlab/fcm/d1/up"
    assert dl.parse_topic(dl.status_topic("apns", "d1")) == ("apns", "d1", "status")
    assert dl.parse_topic("pushlab/apns/d1") is None
    assert dl.parse_topic("other/apns/d1/up") is None
    assert dl.parse_topic("pushlab/apns/d1/sideways") is None


def test_presence_payloads() -> None:
    assert dl.parse_presence(dl.presence(dl.GONE, "7")) == ("gone", "7")
    for bad in (b"", b"[]", b'{"state":"online"}', b'{"state":"maybe","conn":"1"}', b"\xff"):
        with pytest.raises(ValueError):
            dl.parse_presence(bad)


def test_broker_urls() -> None:
    assert dl.parse_broker_url("mqtt://127.0.0.1") == ("127.0.0.1", 1883, False, None, None)
    assert dl.parse_broker_url("mqtts://gw:s%2Fecret@broker.test:8884") == (
        "broker.test", 8884, True, "gw", "s/ecret")
    with pytest.raises(ValueError):
        dl.parse_broker_url("http://127.0.0.1:1883")


@pytest.mark.parametrize(("action", "topic", "allowed"), [
    (Action.SUBSCRIBE, "pushlab/apns/d1/down", True),
    (Action.SUBSCRIBE, "pushlab/+/d1/down", True),
    (Action.RECEIVE, "pushlab/apns/d1/down", True),
    (Action.PUBLISH, "pushlab/apns/d1/up", True),
    (Action.PUBLISH, "pushlab/apns/d1/status", True),
    (Action.SUBSCRIBE, "pushlab/apns/d2/down", False),
    (Action.SUBSCRIBE, "pushlab/apns/+/down", False),
    (Action.SUBSCRIBE, "pushlab/#", False),
    (Action.SUBSCRIBE, "pushlab/apns/d1/up", False),
    (Action.RECEIVE, "pushlab/apns/d2/down", False),
    (Action.PUBLISH, "pushlab/apns/d2/up", False),
    (Action.PUBLISH, "pushlab/apns/d1/down", False),
    (Action.PUBLISH, "elsewhere", False),
])
def test_device_acl(action: Action, topic: str, allowed: bool) -> None:
    assert device_may("d1", action, topic) is allowed


@pytest.mark.parametrize(("action", "topic", "allowed"), [
    (Action.SUBSCRIBE, "pushlab/apns/+/up", True),
    (Action.SUBSCRIBE, "pushlab/apns/+/status", True),
    (Action.RECEIVE, "pushlab/apns/d9/up", True),
    (Action.PUBLISH, "pushlab/apns/d9/down", True),
    (Action.SUBSCRIBE, "pushlab/apns/+/down", False),
    (Action.SUBSCRIBE, "#", False),
    (Action.PUBLISH, "pushlab/apns/+/down", False),
    (Action.PUBLISH, "pushlab/apns/d9/up", False),
])
def test_gateway_acl(action: Action, topic: str, allowed: bool) -> None:
    assert gateway_may(action, topic) is allowed


def test_device_ids_that_cannot_be_topic_levels() -> None:
    assert dl.valid_device_id("iphone-17.local")
    for bad in ("", "a/b", "+", "x#", "$SYS"):
        assert not dl.valid_device_id(bad)


class _Context:
    def __init__(self, config: object) -> None:
        self.config = config
        self.logger = None


def test_login_rules() -> None:
    plugin = DeviceAuthPlugin(_Context(DeviceAuthPlugin.Config(
        gateway_users={"gw": "pw"}, device_secret="s3")))  # type: ignore[arg-type]
    good = device_password("s3", "d1")
    assert plugin.check("gw", "pw", "anything", None)
    assert not plugin.check("gw", "nope", "anything", None)
    assert plugin.check("d1", good, "d1", dl.status_topic("apns", "d1"))
    assert not plugin.check("d1", good, "d2", None)  # client id must be the device id
    assert not plugin.check("d1", good, "d1", dl.down_topic("apns", "d2"))  # nor a foreign Will
    assert not plugin.check("d2", good, "d2", None)  # d1's password is not d2's
    assert not plugin.check(None, None, "d1", None)


def test_external_broker_is_only_a_url() -> None:
    ext = open_broker("mqtt://gw:pw@127.0.0.1:1883", device_secret="s3")
    assert isinstance(ext, ExternalBroker)
    assert (ext.url, ext.gateway_username, ext.gateway_password) == (
        "mqtt://gw:pw@127.0.0.1:1883", "gw", "pw")
    assert ext.device_password("d1") == device_password("s3", "d1")
    assert ExternalBroker("mqtt://127.0.0.1").device_password("d1") is None
    assert isinstance(open_broker(), EmbeddedBroker)


# Mosquitto with the lab's password and ACL files ------------------------------------

def test_password_lines_are_what_mosquitto_passwd_writes() -> None:
    # mosquitto_passwd -b (Mosquitto 2.0.11) wrote this line for dev-a / secret
    salt = base64.b64decode("TAZfTjDefCf7/Au3")
    assert password_line("dev-a", "secret", salt) == (
        "dev-a:$7$101$TAZfTjDefCf7/Au3$iD8ZS+vpv4E1wkA4rXnFs35o4lV98alXoCJZ/9OInkNrTRw9NITyU"
        "V3kHr9Cd2Wtc+ZvpY4ITJ6on+08e4lDwA==")
    with pytest.raises(ValueError):
        password_line("a:b", "x")


def test_auth_files_are_private_and_refuse_bad_device_ids(tmp_path: Path) -> None:
    passwords, acl = write_auth_files(tmp_path, gateway_username="gw", gateway_password="pw",
                                      device_secret="s3", device_ids=["d1", "d2"])
    assert stat.S_IMODE(passwords.stat().st_mode) == 0o600
    assert [line.split(":")[0] for line in passwords.read_text().splitlines()] == [
        "gw", "d1", "d2"]
    assert "user gw" in acl.read_text()
    with pytest.raises(ValueError):
        write_auth_files(tmp_path, gateway_username="gw", gateway_password="pw",
                         device_secret="s3", device_ids=["a/b"])


class _Mosquitto:
    """The real mosquitto binary with the lab's files, on a free loopback port."""

    SECRET = "s3"

    def __init__(self, workdir: Path, *, bind_client_ids: bool = False) -> None:
        binary = find_binary("mosquitto")
        if binary is None:
            pytest.skip("mosquitto is not installed (scripts/install-brokers.sh installs it)")
        self.port = free_port()
        self.gateway = ("gateway", "gw-pass")
        passwords, acl = write_auth_files(
            workdir, gateway_username="gateway", gateway_password="gw-pass",
            device_secret=self.SECRET, device_ids=["dev-a", "dev-b"])
        conf = workdir / "mosquitto.conf"
        conf.write_text("\n".join([f"listener {self.port} 127.0.0.1", "user root",
                                   *config_lines(passwords, acl, bind_client_ids=bind_client_ids),
                                   "log_type error", ""]))
        self.proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        if not wait_port("127.0.0.1", self.port, 10.0):
            self.stop()
            pytest.fail("mosquitto did not start")

    def device(self, device_id: str) -> Raw:
        raw = Raw(self.port)
        assert raw.connect(device_id, device_id, device_password(self.SECRET, device_id)) == 0
        return raw

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[_Mosquitto]:
    broker = _Mosquitto(tmp_path)
    yield broker
    broker.stop()


def _talk(victim: Raw, gw: Raw) -> None:
    gw.send(publish_packet(dl.down_topic("apns", "dev-b"), b"down"))
    assert victim.expect_publish() == (dl.down_topic("apns", "dev-b"), b"down")
    victim.send(publish_packet(dl.up_topic("apns", "dev-b"), b"up"))
    assert gw.expect_publish() == (dl.up_topic("apns", "dev-b"), b"up")


@pytest.mark.live
def test_mosquitto_with_the_lab_files(mosquitto: _Mosquitto) -> None:
    victim = mosquitto.device("dev-b")
    assert victim.subscribe(dl.down_topic("apns", "dev-b")) == 0
    gw = Raw(mosquitto.port)
    assert gw.connect("pushlab-gateway-apns", *mosquitto.gateway) == 0
    assert gw.subscribe(dl.up_wildcard("apns")) == 0
    for user, password in ((None, None), ("dev-b", "guess"), ("nobody", "x")):
        attacker = Raw(mosquitto.port)
        assert attacker.connect("dev-b", user, password) == 5  # refused; dev-b untouched
        assert attacker.closed()
    _talk(victim, gw)
    spy = mosquitto.device("dev-a")  # the ACL: no reading or writing for another device
    # Mosquitto 2.0 grants the SUBACK and checks "read" per message instead
    assert spy.subscribe(dl.down_topic("apns", "dev-b")) in (0, 0x80)
    spy.send(publish_packet(dl.up_topic("apns", "dev-b"), b"forged"))  # dropped silently
    assert spy.ping()
    _talk(victim, gw)  # the gateway's next uplink is dev-b's own, not the forgery
    assert spy.ping(), "the spy got a PINGRESP, not dev-b's downlink"
    # a login of another user does take dev-b's client id over: Mosquitto's rule
    thief = Raw(mosquitto.port)
    assert thief.connect("dev-b", *mosquitto.gateway) == 0
    assert victim.closed()


@pytest.mark.live
def test_mosquitto_binding_client_ids_to_usernames(tmp_path: Path) -> None:
    broker = _Mosquitto(tmp_path, bind_client_ids=True)
    try:
        victim = broker.device("dev-b")
        assert victim.subscribe(dl.down_topic("apns", "dev-b")) == 0
        gw = Raw(broker.port)
        assert gw.connect("dev-b", *broker.gateway) == 0  # becomes client "gateway"
        assert not victim.closed(within=0.5)
        assert gw.subscribe(dl.up_wildcard("apns")) == 0
        _talk(victim, gw)
    finally:
        broker.stop()
