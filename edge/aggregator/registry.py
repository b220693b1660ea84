"""Enrollment registry of device records (kind 3), kept in the aggregator's SQLite store."""

from __future__ import annotations

from edge.errors import ConfigError, Malformed, Oversized
from edge.formats.device import DeviceRecord, parse_device_record

from . import names
from .store import Store


class Registry:
    """The enrolled devices of one fleet: any number (a package names no device; each
    device gets its own key wrap), unless the operator sets ``max_devices``."""

    def __init__(self, store: Store, max_devices: int | None = None):
        self.store = store
        self.max_devices = max_devices
        # Records whose self-signature was verified, by their exact bytes: a round re-reads
        # the devices several times, and an Ed25519 verify per device each time adds up.
        self._parsed: dict[bytes, DeviceRecord] = {}

    def _parse(self, record: bytes) -> DeviceRecord:
        """A record parsed and verified once per process (the cache is keyed by its bytes)."""
        device = self._parsed.get(record)
        if device is None:
            device = parse_device_record(record)
            self._parsed[record] = device
        return device

    def enroll(self, record: bytes, *, readmit: bool = False,
               name: str | None = None) -> DeviceRecord:
        """Verify a device record's self-signature and enroll it (idempotent for the same one;
        ``name`` gives or changes its human name); a revoked device only with ``readmit``."""
        device = self._parse(bytes(record))
        if name is not None:
            names.check(name)
        revoked = self.store.revoked_at(device.device_id)
        if revoked is not None and not readmit:
            raise ConfigError(f"device {device.device_id.hex()} was revoked; enrolling its "
                              "record again needs --readmit")
        with self.store.transaction() as db:
            if revoked is not None:
                self.store.readmit(db, device.device_id)
            if name is not None:
                holder = db.execute("SELECT device_id FROM device_names WHERE name = ?",
                                    (name,)).fetchone()
                if holder is not None and bytes(holder[0]) != device.device_id:
                    raise ConfigError(f"name {name!r} is device {bytes(holder[0]).hex()}'s "
                                      "already; a board name names one board")
                self.store.set_name(db, device.device_id, name)
            row = db.execute("SELECT record FROM devices WHERE device_id = ?",
                             (device.device_id,)).fetchone()
            if row is not None:
                known = self._parse(bytes(row[0]))
                if known.x25519_pub != device.x25519_pub:
                    raise Malformed(f"device {device.device_id.hex()} is enrolled with another "
                                    "key-agreement key; refusing to replace it")
                return device
            count = db.execute("SELECT count(*) FROM devices").fetchone()[0]
            if self.max_devices is not None and count >= self.max_devices:
                raise Oversized(f"fleet has {count} devices, the maximum set for it is "
                                f"{self.max_devices}; device {device.device_id.hex()} refused")
            self.store.add_device(db, device.device_id, bytes(record))
        return device

    def revoke(self, device_id: bytes) -> None:
        """Remove an enrolled device: no more tickets; the next package leaves it out."""
        with self.store.transaction() as db:
            if not self.store.remove_device(db, device_id):
                raise ConfigError(f"device {device_id.hex()} is not enrolled")
            # Kept: a copy of its record enrolled again must not re-admit it silently.
            self.store.revoke(db, device_id)

    def records(self) -> dict[bytes, bytes]:
        """Enrolled devices' signed records (kind 3) by device id."""
        return {self._parse(r).device_id: r for r in self.store.device_records()}

    def devices(self) -> dict[bytes, DeviceRecord]:
        """Enrolled devices by id, in id order."""
        out: dict[bytes, DeviceRecord] = {}
        for record in self.store.device_records():
            device = self._parse(record)
            out[device.device_id] = device
        return out
