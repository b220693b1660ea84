"""Prometheus metrics of a real aggregator over a real Mosquitto: the HTTP endpoint scraped
after each round and the node_exporter textfile, both parsed with prometheus_client's parser
and compared with the aggregator's database."""

from __future__ import annotations

import threading
import urllib.request
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge.aggregator import Aggregator, AggregatorConfig, RoundMetrics
from edge.aggregator.simulate import FakeDevice, config_mapping
from edge.broker import MosquittoBroker
from edge.errors import ConfigError
from edge.mqtt import BrokerSettings, make_client

FLEET = "prom"
PARAMS = 27  # the simulated head: 8 x 3 + 3


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition by (name, sorted labels), via prometheus_client."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def _answer(url: str, devices: list[FakeDevice]) -> mqtt.Client:
    """Fake devices answering each ticket with an update, then with a garbage message."""
    by_id = {d.device_id.hex(): d for d in devices}
    client = make_client(BrokerSettings.from_mapping({"url": url}), "fake-devices",
                         clean_session=True)

    def on_message(c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        dev = by_id[msg.topic.split("/")[4]]
        c.publish(dev.topic(FLEET), dev.update(bytes(msg.payload),
                                               np.full(PARAMS, 0.01, np.float32)), qos=1)
        c.publish(dev.topic(FLEET), b"garbage", qos=1)

    client.on_message = on_message
    client.connect("127.0.0.1", int(url.rsplit(":", 1)[1]))
    for d in devices:
        client.subscribe(f"edge/v1/{FLEET}/devices/{d.device_id.hex()}/ticket", qos=1)
    client.loop_start()
    return client


def test_endpoint_and_textfile_report_rounds_refusals_epsilon(
        tmp_path: Path, mosquitto: MosquittoBroker) -> None:
    prom = tmp_path / "edge.prom"
    table = config_mapping(tmp_path, mosquitto.url, fleet=FLEET,
                           rounds={"cohort_size": 3, "quorum": 3, "min_updates": 1,
                                   "timeout_s": 20, "rounds": 3},
                           dp={"central_noise_multiplier": 2.0},
                           metrics={"prometheus_textfile": str(prom), "prometheus_port": 0})
    config = AggregatorConfig.from_mapping(table)
    devices = [FakeDevice(example_count=5 + i) for i in range(3)]
    scraped: list[tuple[RoundMetrics, str]] = []
    answers = _answer(mosquitto.url, devices)
    try:
        with Aggregator(config) as agg:
            def on_round(m: RoundMetrics) -> None:
                url = f"http://127.0.0.1:{agg.exporter.port}/metrics"
                with urllib.request.urlopen(url, timeout=10) as resp:
                    scraped.append((m, resp.read().decode()))

            agg.on_round = on_round
            for d in devices:
                agg.enroll(d.record)
            stop = threading.Event()
            runner = threading.Thread(target=agg.run, args=(stop,), daemon=True)
            runner.start()
            runner.join(60)
            stop.set()
            runner.join(10)
            assert not runner.is_alive()
            refusals = agg.store.refusals()
            rows = agg.store.metrics_rows()
    finally:
        answers.disconnect()
        answers.loop_stop()
    assert len(scraped) == 3
    label = (("fleet", FLEET),)
    for m, text in scraped:
        got = samples(text)
        assert got[("edge_aggregator_rounds_total", (("fleet", FLEET), ("state", "closed")))] \
            == m.round
        assert got[("edge_aggregator_last_round", label)] == m.round
        assert got[("edge_aggregator_last_round_participants", label)] == m.participants == 3
        assert got[("edge_aggregator_epsilon", label)] == pytest.approx(m.epsilon)
        assert got[("edge_aggregator_last_round_duration_seconds", label)] == \
            pytest.approx(m.seconds)
        assert got[("edge_aggregator_round_duration_seconds_count", label)] == m.round
        assert got[("edge_aggregator_participants_total", label)] == 3 * m.round
    # the textfile holds the state after the last round, refusals by class included
    got = samples(prom.read_text())
    assert refusals.get("malformed", 0) >= 3
    for cls, n in refusals.items():
        assert got[("edge_aggregator_refusals_total",
                    (("fleet", FLEET), ("refusal", cls)))] == n
    assert got[("edge_aggregator_round_duration_seconds_sum", label)] == \
        pytest.approx(sum(r["seconds"] for r in rows))
    assert got[("edge_aggregator_model_version", label)] == 4
    assert got[("edge_aggregator_devices_enrolled", label)] == 3
    assert got[("edge_aggregator_delta", label)] == pytest.approx(1e-5)
    assert not (tmp_path / "edge.prom.tmp").exists()


def test_metrics_settings_are_checked(tmp_path: Path) -> None:
    for metrics, key in (({"prometheus_textfile": str(tmp_path / "edge.txt")},
                          "metrics.prometheus_textfile"),
                         ({"prometheus_port": 70000}, "metrics.prometheus_port"),
                         ({"prometheus_textfile": str(tmp_path / "no" / "x.prom")},
                          "metrics.prometheus_textfile"),
                         ({"prometheus_adress": "x"}, "metrics.prometheus_adress")):
        with pytest.raises(ConfigError, match=key):
            AggregatorConfig.from_mapping(config_mapping(tmp_path / key, metrics=metrics))


def test_port_in_use_is_refused_before_connecting(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = AggregatorConfig.from_mapping(config_mapping(
            tmp_path, "mqtt://127.0.0.1:1", metrics={"prometheus_port": port}))
        with Aggregator(config) as agg, pytest.raises(ConfigError, match="prometheus_port"):
            agg.run(threading.Event(), rounds=1)
