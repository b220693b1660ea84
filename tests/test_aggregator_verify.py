"""Aggregator verification: every refusal class, each landing in the audit log; no broker."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from edge.aggregator.config import AggregatorConfig
from edge.aggregator.registry import Registry
from edge.aggregator.rounds import RoundManager
from edge.aggregator.simulate import FakeDevice, config_mapping
from edge.aggregator.store import Store
from edge.errors import Malformed, Oversized, SignatureInvalid
from edge.formats.ticket import parse_ticket
from edge.protocol import update_topic

FLEET = "test"
PARAMS = 8 * 3 + 3


@dataclass
class Fleet:
    """A round manager with three enrolled fake devices and round 1 open."""

    manager: RoundManager
    store: Store
    devices: list[FakeDevice]
    tickets: dict[bytes, bytes]

    def delta(self, scale: float = 0.1) -> np.ndarray:
        return np.full(PARAMS, scale / np.sqrt(PARAMS), np.float32)

    def send(self, dev: FakeDevice, payload: bytes, topic: str | None = None) -> str | None:
        return self.manager.handle(topic or dev.topic(FLEET), payload).refusal


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    config = AggregatorConfig.from_mapping(config_mapping(tmp_path, fleet=FLEET))
    store = Store(config.state)
    registry = Registry(store)
    devices = [FakeDevice(example_count=10 * (i + 1)) for i in range(4)]
    for d in devices[:3]:
        registry.enroll(d.record)
    manager = RoundManager(config, store, registry)
    tickets = dict(manager.open_next())
    by_device = {d.device_id: tickets[update_topic(FLEET, d.device_id).replace("update",
                                                                                 "ticket")]
                 for d in devices[:3]}
    yield Fleet(manager, store, devices, by_device)
    store.close()


def _audit(store: Store) -> list[str]:
    return [row["refusal"] for row in store.audit_rows()]


def test_valid_update_is_accepted(fleet: Fleet) -> None:
    dev = fleet.devices[0]
    assert fleet.send(dev, dev.update(fleet.tickets[dev.device_id], fleet.delta())) is None
    assert fleet.store.accepted(1) != {}
    assert _audit(fleet.store) == []


def test_refusal_classes_land_in_audit_log(fleet: Fleet) -> None:
    a, b, c, stranger = fleet.devices
    ta, tb, tc = (fleet.tickets[d.device_id] for d in (a, b, c))
    good = a.update(ta, fleet.delta())
    cases: list[tuple[str, FakeDevice, bytes, str | None]] = []
    # bad signature: flip one signature byte
    cases.append(("signature", a, good[:-1] + bytes([good[-1] ^ 1]), None))
    # unenrolled device with a correct-looking update
    cases.append(("unknown-device", stranger, stranger.update(ta, fleet.delta()), None))
    # a's update published on b's topic
    cases.append(("topic-mismatch", a, good, b.topic(FLEET)))
    # wrong round, wrong nonce, wrong model version
    cases.append(("wrong-round", a, a.update(ta, fleet.delta(), round_id=2), None))
    cases.append(("replay", a, a.update(ta, fleet.delta(), nonce=bytes(16)), None))
    cases.append(("wrong-model", a, a.update(ta, fleet.delta(), model_version=7), None))
    # norm above U, U other than the ticket's, wrong parameter count
    cases.append(("norm", a, a.update(ta, np.full(PARAMS, 1.0, np.float32)), None))
    cases.append(("norm", a, a.update(ta, fleet.delta(), update_clip=5.0), None))
    cases.append(("malformed", a, a.update(ta, np.zeros(PARAMS + 1, np.float32)), None))
    # malformed bytes, truncated, a ticket where an update goes, a bad topic
    cases.append(("malformed", a, b"not an artefact", None))
    cases.append(("malformed", a, good[:-5], None))
    cases.append(("wrong-kind", a, ta, None))
    cases.append(("malformed", a, good, f"edge/v1/{FLEET}/devices/xyz/update"))
    for refusal, dev, payload, topic in cases:
        assert fleet.send(dev, payload, topic) == refusal, refusal
    # duplicate: the same bytes again, and a second different update
    assert fleet.send(a, good) is None
    assert fleet.send(a, good) == "duplicate"
    assert fleet.send(a, a.update(ta, fleet.delta(0.2))) == "duplicate"
    # b and c are fine; the round reaches quorum with exactly three accepted updates
    assert fleet.send(b, b.update(tb, fleet.delta())) is None
    assert fleet.send(c, c.update(tc, fleet.delta())) is None
    expected = [r for r, *_ in cases] + ["duplicate", "duplicate"]
    assert _audit(fleet.store) == expected
    assert fleet.manager.due() == "quorum"
    assert len(fleet.store.accepted(1)) == 3
    reasons = {row["refusal"]: row["reason"] for row in fleet.store.audit_rows()}
    assert "not enrolled" in reasons["unknown-device"]
    assert "exceeds U" in reasons["norm"] or "ticket set" in reasons["norm"]


def test_not_in_cohort(tmp_path: Path) -> None:
    config = AggregatorConfig.from_mapping(config_mapping(tmp_path, rounds={
        "cohort_size": 1, "quorum": 1, "min_updates": 1}))
    with Store(config.state) as store:
        registry = Registry(store)
        devs = [FakeDevice() for _ in range(2)]
        for d in devs:
            registry.enroll(d.record)
        manager = RoundManager(config, store, registry)
        ((topic, ticket),) = manager.open_next()
        outsider = next(d for d in devs if d.device_id.hex() not in topic)
        out = manager.handle(outsider.topic("test"), outsider.update(ticket, np.zeros(PARAMS)))
        assert out.refusal == "not-in-cohort"
        assert store.refusals(1) == {"not-in-cohort": 1}


def test_update_after_round_closed_is_wrong_round(fleet: Fleet) -> None:
    for d in fleet.devices[:3]:
        assert fleet.send(d, d.update(fleet.tickets[d.device_id], fleet.delta())) is None
    fleet.manager.close()
    late = fleet.devices[0].update(fleet.tickets[fleet.devices[0].device_id], fleet.delta())
    assert fleet.send(fleet.devices[0], late) == "wrong-round"


def test_enrollment_refusals(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as store:
        registry = Registry(store, max_devices=2)
        a, b, c = FakeDevice(), FakeDevice(), FakeDevice()
        registry.enroll(a.record)
        assert registry.enroll(a.record).device_id == a.device_id  # idempotent
        registry.enroll(b.record)
        with pytest.raises(Oversized, match="maximum set for it is 2"):
            registry.enroll(c.record)
        bad = bytearray(c.record)
        bad[-1] ^= 1
        with pytest.raises(SignatureInvalid):
            Registry(store, max_devices=9).enroll(bytes(bad))
        with pytest.raises(Malformed):
            Registry(store, max_devices=9).enroll(b"EDGE")
        assert store.device_count() == 2


def test_ticket_fields_come_from_config(fleet: Fleet) -> None:
    t = parse_ticket(next(iter(fleet.tickets.values())))
    assert (t.round_id, t.model_version, t.update_clip, t.epochs, t.batch_size) == (1, 1, 1.0,
                                                                                    1, 8)
    assert t.deadline - t.issued_at in (30, 31)


def test_every_ticket_bound_field_is_checked(fleet: Fleet) -> None:
    # Issue 10, item 5: an enrolled key could send sigma = 0, C = 1e30, steps = 0
    # and n = 2^32 - 1, and n was that update's FedAvg weight.
    a = fleet.devices[0]
    ta = fleet.tickets[a.device_id]
    cases = [
        ("ticket-mismatch", {"noise_multiplier": 0.0}, "noise_multiplier"),
        ("ticket-mismatch", {"example_clip": 1e30}, "example_clip"),
        ("malformed", {"steps": 0}, "steps"),
        ("malformed", {"example_count": 0}, "example"),
        ("oversized", {"example_count": 2**32 - 1}, "examples"),
    ]
    for refusal, override, word in cases:
        assert fleet.send(a, a.update(ta, fleet.delta(), **override)) == refusal, override
        assert word in fleet.store.audit_rows()[-1]["reason"], override
    assert fleet.store.accepted(1) == {}
    assert fleet.send(a, a.update(ta, fleet.delta())) is None
