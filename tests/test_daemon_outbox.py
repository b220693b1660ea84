"""The daemon's outbox on disk and PUBACK tracking by message id (no broker, no TEE)."""

from __future__ import annotations

import stat
from pathlib import Path

import numpy as np

from edge.aggregator.simulate import FakeDevice
from edge.daemon.outbox import Outbox
from edge.formats.ticket import build_ticket
from edge.mqtt import Pending, PubAcks


def sealed(round_id: int, model_version: int = 1) -> bytes:
    """A real sealed update (signed by a fake device) of ``round_id``."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    ticket = build_ticket(Ed25519PrivateKey.generate(), round_id=round_id,
                          model_version=model_version, package_id=bytes(16),
                          nonce=bytes(16), issued_at=0,
                          deadline=2**40, example_clip=1.0, noise_multiplier=1.0,
                          update_clip=1.0, learning_rate=0.1, epochs=1, batch_size=1)
    return FakeDevice().update(ticket, np.zeros(4, np.float32))


def test_outbox_keeps_updates_durably_and_privately(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox")
    a, b = sealed(7), sealed(12, model_version=3)
    box.put(b)
    box.put(a)
    assert stat.S_IMODE((tmp_path / "outbox").stat().st_mode) == 0o700
    entries = box.entries()
    assert [(e.round_id, e.model_version, e.sealed) for e in entries] == [(7, 1, a), (12, 3, b)]
    assert all(e.path is not None and stat.S_IMODE(e.path.stat().st_mode) == 0o600
               for e in entries)
    # A restart sees the same entries; a leftover temporary file (a crash mid-write,
    # never published) is dropped.
    (tmp_path / "outbox" / "round-00000000000000000099.tmp").write_bytes(b"half")
    again = Outbox(tmp_path / "outbox")
    assert [e.sealed for e in again.entries()] == [a, b]
    assert not list((tmp_path / "outbox").glob("*.tmp"))
    assert again.get(12) is not None and again.get(13) is None
    again.remove(entries[0])
    assert [e.round_id for e in again.entries()] == [12]


def test_outbox_sets_aside_an_unreadable_file(tmp_path: Path) -> None:
    box = Outbox(tmp_path)
    box.put(sealed(1))
    (tmp_path / "round-00000000000000000002.update").write_bytes(b"\x00garbage")
    assert [e.round_id for e in box.entries()] == [1]
    assert (tmp_path / "round-00000000000000000002.bad").exists()


def test_pubacks_count_only_acknowledgements_after_the_publish() -> None:
    acks = PubAcks()
    acks._on_publish(None, None, 5, None, None)  # an old PUBACK of message id 5
    # Message id 5 reused by a later publish: the old acknowledgement does not count.
    later = Pending(mid=5, since=1)
    assert not acks.done(later) and not acks.wait(later, 0.01)
    acks._on_publish(None, None, 5, None, None)
    assert acks.done(later) and acks.wait(later, 0.01)
    # A PUBACK racing ahead of the caller (it came before publish() returned) counts.
    early = Pending(mid=9, since=2)
    acks._on_publish(None, None, 9, None, None)
    assert acks.done(early)
