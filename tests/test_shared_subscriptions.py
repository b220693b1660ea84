"""What scale-out builds on: Mosquitto 2's MQTT 5 shared subscriptions under a worker kill.

Two members of ``$share/workers/...`` as real processes on a Mosquitto started by the
test; one records but never acknowledges and is SIGKILLed. Counted, not assumed: what
the broker gave the dead member stays in its session (not handed to the other member)
and comes back, with what was routed to it meanwhile, when it restarts with the same
client id; nothing is lost and nothing reaches both (docs/scale-out.md).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from conftest import ROOT
from federation_helpers import wait_for

from edge.broker import BrokerError, MosquittoBroker
from edge.mqtt import BrokerSettings

FILTER = "$share/workers/edge/v1/demo/devices/+/update"
FIRST, SECOND = 200, 40


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[MosquittoBroker]:
    try:
        broker = MosquittoBroker(tmp_path / "mosquitto")
    except BrokerError as exc:
        pytest.fail(f"{exc} -- the scale-out tests need a real Mosquitto: run scripts/setup.sh")
    try:
        yield broker
    finally:
        broker.stop()


def member(port: int, cid: str, out: Path, mode: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(ROOT / "tests" / "shared_consumer.py"),
                             str(port), cid, str(out), mode, FILTER])


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="ascii").split() if path.exists() else []


def test_a_killed_member_loses_nothing_and_shares_nothing_twice(
        mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    port = BrokerSettings.from_url(mosquitto.url).port
    procs = [member(port, "worker-a", tmp_path / "a", "noack"),
             member(port, "worker-b", tmp_path / "b", "ack")]
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="devices",
                      protocol=mqtt.MQTTv311)  # the boards stay on MQTT 3.1.1
    try:
        pub.connect("127.0.0.1", port)
        pub.loop_start()

        def send(lo: int, hi: int) -> None:
            for i in range(lo, hi):
                topic = f"edge/v1/demo/devices/{i % 13:032x}/update"
                pub.publish(topic, str(i), qos=1).wait_for_publish(10)

        # Both members subscribed once each has recorded a probe (numbered below 0).
        probe = 0
        while not (lines(tmp_path / "a") and lines(tmp_path / "b")):
            send(-1 - probe, -probe)
            probe += 1
            time.sleep(0.02)
            assert probe < 500, "the two shared-subscription members never both received"
        send(0, FIRST)
        # The silent member holds at most the broker's in-flight window; the rest of its
        # share queues in its session. Kill it once deliveries have settled.
        counts: list[int] = []

        def settled() -> bool:
            counts.append(len(lines(tmp_path / "a")) + len(lines(tmp_path / "b")))
            time.sleep(0.25)
            return len(counts) > 4 and len(set(counts[-4:])) == 1
        wait_for(settled, what="deliveries of the first messages to settle")
        procs[0].kill()
        procs[0].wait(10)
        unacked = {x for x in lines(tmp_path / "a") if int(x) >= 0}
        assert unacked, "the killed member held no unacknowledged message"
        send(FIRST, FIRST + SECOND)  # while it is down
        (tmp_path / "a").rename(tmp_path / "a-before-kill")
        procs[0] = member(port, "worker-a", tmp_path / "a", "ack")
        want = {str(i) for i in range(FIRST + SECOND)}
        wait_for(lambda: want <= set(lines(tmp_path / "a")) | set(lines(tmp_path / "b")),
                 timeout=20, what="every message after the restart")
        b = {x for x in lines(tmp_path / "b") if int(x) >= 0}
        a = {x for x in lines(tmp_path / "a") if int(x) >= 0}
        lost = want - (a | b)
        twice = a & b
        print(f"SHARED killed=1 sent={len(want)} unacked_at_kill={len(unacked)} "
              f"redelivered_to_restart={len(unacked & a)} to_other={len(unacked & b)} "
              f"lost={len(lost)} on_both={len(twice)}")
        assert not lost and not twice
        assert unacked <= a  # Mosquitto 2.0: back to the same session, not to worker-b
    finally:
        pub.disconnect()
        pub.loop_stop()
        for p in procs:
            p.kill()
            p.wait(10)
