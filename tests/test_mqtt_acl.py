"""Topic names, presence payloads and the broker's access rules, without a broker."""

from __future__ import annotations

import pytest
from amqtt.contexts import Action

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
