"""The local brokers: embedded amqtt and a spawned Mosquitto (start, stop, restart, no loss)."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from edge.broker import EmbeddedBroker, MosquittoBroker
from edge.mqtt import BrokerSettings, make_client


class Sub:
    """A subscriber that records payloads, optionally slowly (blocking its network thread)."""

    def __init__(self, url: str, topic: str, *, client_id: str = "sub", delay: float = 0.0,
                 clean: bool = True) -> None:
        self.got: list[bytes] = []
        self.subscribed = threading.Event()
        self.delay = delay
        s = BrokerSettings.from_url(url)
        self.client = make_client(s, client_id, clean_session=clean)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda c, u, mid, rc, p: self.subscribed.set()
        self.client.on_message = self._message
        self.client.connect(s.host, s.port)
        self.client.loop_start()
        assert self.subscribed.wait(10)

    def _message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        if self.delay:
            time.sleep(self.delay)
        self.got.append(bytes(msg.payload))

    def wait(self, n: int, timeout: float = 30.0) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while len(self.got) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.got

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def publish(url: str, topic: str, payloads: list[bytes], retain: bool = False) -> None:
    """Publish with QoS 1 and wait for every PUBACK."""
    s = BrokerSettings.from_url(url)
    client = make_client(s, "pub", clean_session=True)
    client.max_queued_messages_set(0)
    client.connect(s.host, s.port)
    client.loop_start()
    try:
        infos = [client.publish(topic, p, qos=1, retain=retain) for p in payloads]
        for info in infos:
            info.wait_for_publish(30)
            assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[MosquittoBroker]:
    broker = MosquittoBroker(tmp_path / "mosquitto")
    try:
        yield broker
    finally:
        broker.stop()


def test_embedded_broker_round_trip_and_restart_on_the_same_port() -> None:
    with EmbeddedBroker() as broker:
        assert broker.url.startswith("mqtt://127.0.0.1:")
        port = broker.port
        sub = Sub(broker.url, "t/#")
        publish(broker.url, "t/a", [b"%d" % i for i in range(200)])
        assert sub.wait(200) == [b"%d" % i for i in range(200)]
        sub.close()
        broker.restart()
        assert broker.port == port and broker.running
        sub = Sub(broker.url, "t/#")
        publish(broker.url, "t/b", [b"again"])
        assert sub.wait(1) == [b"again"]
        sub.close()
    assert not broker.running
    broker.stop()  # idempotent


def test_embedded_broker_listens_on_loopback_only() -> None:
    with EmbeddedBroker() as broker:
        listeners = broker._broker.config.listeners  # the configuration amqtt runs with
        assert listeners["default"].bind == f"127.0.0.1:{broker.port}"


def test_mosquitto_config_is_generated_for_loss_free_loopback(
        mosquitto: MosquittoBroker) -> None:
    text = mosquitto.config_file.read_text()
    assert f"listener {mosquitto.port} 127.0.0.1" in text
    assert "max_queued_messages 100000" in text and "persistence true" in text
    assert "autosave_on_changes true" in text and "autosave_interval 1" in text
    assert mosquitto.running and mosquitto.log_file.exists()


def test_mosquitto_slow_subscriber_loses_no_qos1_message(mosquitto: MosquittoBroker) -> None:
    sub = Sub(mosquitto.url, "load/#", delay=0.001)
    payloads = [b"%05d" % i for i in range(2000)]
    publish(mosquitto.url, "load/x", payloads)
    got = sub.wait(2000, timeout=60)
    sub.close()
    assert len(got) == 2000 and got == payloads


def test_mosquitto_restart_keeps_port_sessions_and_retained(mosquitto: MosquittoBroker) -> None:
    sub = Sub(mosquitto.url, "persist/#", client_id="durable", clean=False)
    sub.close()
    publish(mosquitto.url, "persist/model", [b"model-v1"], retain=True)
    port = mosquitto.port
    mosquitto.restart()
    assert mosquitto.port == port and mosquitto.running
    publish(mosquitto.url, "persist/update", [b"while-offline"])
    sub = Sub(mosquitto.url, "persist/#", client_id="durable", clean=False)
    got = sub.wait(2, timeout=10)
    sub.close()
    # Both were queued for the offline session (the retained one may come again on the
    # new SUBSCRIBE).
    assert set(got) == {b"model-v1", b"while-offline"} and got.count(b"while-offline") == 1
    late = Sub(mosquitto.url, "persist/model", client_id="late")
    assert late.wait(1, timeout=10) == [b"model-v1"]
    late.close()


@pytest.mark.parametrize("each_change", [True, False], ids=["autosave-each-change",
                                                            "autosave-60s"])
def test_mosquitto_sigkill_keeps_acknowledged_messages(tmp_path: Path, each_change: bool) -> None:
    """Measured: 20 PUBACKed messages for an offline session, then a SIGKILL.

    Saving on every change keeps all but at most the last one (Mosquitto 2.0 saves after
    it sent the PUBACK, so it is not per-message durable; the daemons' outboxes cover that
    window); saving every 60 s keeps none.
    """
    broker = MosquittoBroker(tmp_path / "mosquitto", autosave_each_change=each_change)
    try:
        Sub(broker.url, "crash/#", client_id="offline", clean=False).close()
        time.sleep(0.2)  # with a save per change, the session's subscription is on disk
        payloads = [b"%02d" % i for i in range(20)]
        for p in payloads:  # one at a time, each PUBACKed, as boards send updates
            publish(broker.url, "crash/x", [p])
        broker.kill()
        broker.start()
        sub = Sub(broker.url, "crash/#", client_id="offline", clean=False)
        got = sub.wait(20, timeout=3)
        sub.close()
    finally:
        broker.stop()
    print(f"MOSQUITTO autosave_each_change={each_change}: acknowledged 20, "
          f"kept over SIGKILL {len(got)}")
    if each_change:
        assert got == payloads[:len(got)] and len(got) >= 19
    else:
        assert got == []


def test_mosquitto_missing_binary_is_a_clear_error(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from edge import broker as broker_module

    monkeypatch.setattr(broker_module.shutil, "which", lambda *a, **k: None)
    monkeypatch.setattr(broker_module, "MOSQUITTO", str(tmp_path / "no-mosquitto"))
    with pytest.raises(broker_module.BrokerError, match="apt-get install mosquitto"):
        MosquittoBroker(tmp_path)


def test_mosquitto_with_password_file_and_the_deployed_acl(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), "aggregator", "pw"],
                   check=True, capture_output=True)
    with MosquittoBroker(tmp_path / "m", acl_file=root / "deploy/mosquitto/acl",
                         password_file=passwd) as broker:
        text = broker.config_file.read_text()
        assert "allow_anonymous false" in text and "acl_file " in text
        codes: list[object] = []
        s = BrokerSettings.from_url(broker.url)
        anonymous = make_client(s, "anon", clean_session=True)
        anonymous.on_connect = lambda c, u, f, rc, p: codes.append(rc)
        anonymous.connect(s.host, s.port)
        anonymous.loop_start()
        deadline = time.monotonic() + 10
        while not codes and time.monotonic() < deadline:
            time.sleep(0.02)
        anonymous.loop_stop()
        assert codes and codes[0].is_failure  # type: ignore[attr-defined]
