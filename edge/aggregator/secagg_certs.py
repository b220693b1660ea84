"""The fleet's enrollment certificates (``[secagg] certificates``), verified on every read."""

from __future__ import annotations

import logging
from pathlib import Path

from edge.errors import EdgeError
from edge.formats.secagg import CERT_SIZE, fleet_id, verify_cert

log = logging.getLogger("edge.aggregator")


def load_certificates(folder: Path, fleet: str, registrar_pub: bytes) -> dict[bytes, bytes]:
    """Device id -> certificate of every ``*.cert`` in ``folder`` that the registrar signed
    for ``fleet``; the others are logged and left out (their devices get no secagg ticket)."""
    out: dict[bytes, bytes] = {}
    fid = fleet_id(fleet)
    for path in sorted(folder.glob("*.cert")) if folder.is_dir() else []:
        try:
            if path.stat().st_size > CERT_SIZE:
                log.warning("secagg certificate %s: larger than %d bytes; ignored", path.name,
                            CERT_SIZE)
                continue
            cert = verify_cert(path.read_bytes(), registrar_pub, fid)
        except (OSError, EdgeError) as exc:
            log.warning("secagg certificate %s: %s; ignored", path.name, exc)
            continue
        out[cert.device_id] = cert.raw
    return out
