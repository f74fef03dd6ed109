"""Live mode: real sockets on loopback, the device link over an MQTT broker."""

from simulator.live.broker import EmbeddedBroker, ExternalBroker, device_password, open_broker

__all__ = ["EmbeddedBroker", "ExternalBroker", "device_password", "open_broker"]
