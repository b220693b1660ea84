"""MQTT topic names of the federation (docs/protocol.md), built in one place."""

from __future__ import annotations

import re

from edge.errors import ConfigError, Malformed

PROTOCOL_VERSION = 1
_FLEET = re.compile(r"^[a-z0-9-]{1,32}$")
_DEVICE = re.compile(r"^[0-9a-f]{32}$")


def check_fleet(fleet: str) -> str:
    """Return ``fleet`` if it is a valid fleet name, else raise ConfigError."""
    if not _FLEET.match(fleet):
        raise ConfigError(f"fleet name {fleet!r} must match [a-z0-9-]{{1,32}}")
    return fleet


def model_topic(fleet: str) -> str:
    """Retained topic of the fleet's current model package."""
    return f"edge/v{PROTOCOL_VERSION}/{check_fleet(fleet)}/model"


def wrap_topic(fleet: str, device_id: bytes) -> str:
    """Retained topic of one device's key wrap for the fleet's current model package."""
    return f"edge/v{PROTOCOL_VERSION}/{check_fleet(fleet)}/devices/{device_id.hex()}/wrap"


def ticket_topic(fleet: str, device_id: bytes) -> str:
    """Topic on which one device receives its round tickets."""
    return f"edge/v{PROTOCOL_VERSION}/{check_fleet(fleet)}/devices/{device_id.hex()}/ticket"


def update_topic(fleet: str, device_id: bytes) -> str:
    """Topic on which one device publishes its sealed updates."""
    return f"edge/v{PROTOCOL_VERSION}/{check_fleet(fleet)}/devices/{device_id.hex()}/update"


def update_subscription(fleet: str) -> str:
    """The aggregator's subscription to every device's updates."""
    return f"edge/v{PROTOCOL_VERSION}/{check_fleet(fleet)}/devices/+/update"


def status_topic(fleet: str, device_id: bytes) -> str:
    """Retained topic of one device's presence (ONLINE or OFFLINE; its last will)."""
    return f"edge/v{PROTOCOL_VERSION}/{check_fleet(fleet)}/devices/{device_id.hex()}/status"


def status_subscription(fleet: str) -> str:
    """The aggregator's subscription to every device's presence."""
    return f"edge/v{PROTOCOL_VERSION}/{check_fleet(fleet)}/devices/+/status"


def skip_topic(fleet: str, device_id: bytes) -> str:
    """Topic on which one device publishes its signed skip reports (docs/protocol.md)."""
    return f"edge/v{PROTOCOL_VERSION}/{check_fleet(fleet)}/devices/{device_id.hex()}/skip"


def skip_subscription(fleet: str) -> str:
    """The aggregator's subscription to every device's skip reports."""
    return f"edge/v{PROTOCOL_VERSION}/{check_fleet(fleet)}/devices/+/skip"


# Secure aggregation (docs/secagg.md, docs/protocol.md "Secure aggregation"): each device
# publishes its advert, shares and reveals on topics under its own id (the ACL lets only it
# write them); the aggregator publishes the roster and survivor list to the fleet and each
# device's inbox on a topic only that device reads. Masked updates use the update topic.
SECAGG_DEVICE_STAGES = ("advert", "shares", "reveals")


def secagg_device_topic(fleet: str, device_id: bytes, stage: str) -> str:
    """Topic on which one device publishes its ``stage`` message (advert, shares, reveals)."""
    if stage not in SECAGG_DEVICE_STAGES:
        raise ValueError(f"secagg stage {stage!r} is not one of {SECAGG_DEVICE_STAGES}")
    return (f"edge/v{PROTOCOL_VERSION}/{check_fleet(fleet)}/devices/{device_id.hex()}"
            f"/secagg/{stage}")


def secagg_device_subscription(fleet: str) -> str:
    """The aggregator's subscription to every device's secagg messages."""
    return f"edge/v{PROTOCOL_VERSION}/{check_fleet(fleet)}/devices/+/secagg/+"


def secagg_fleet_topic(fleet: str, what: str) -> str:
    """The fleet-wide directive topics: ``roster`` and ``survivors``."""
    if what not in ("roster", "survivors"):
        raise ValueError(f"secagg fleet topic {what!r} is not roster or survivors")
    return f"edge/v{PROTOCOL_VERSION}/{check_fleet(fleet)}/secagg/{what}"


def secagg_inbox_topic(fleet: str, device_id: bytes) -> str:
    """Topic on which one device receives its inbox of shares."""
    return f"edge/v{PROTOCOL_VERSION}/{check_fleet(fleet)}/devices/{device_id.hex()}/secagg-inbox"


def secagg_from_device_topic(fleet: str, topic: str) -> tuple[bytes, str]:
    """(device id, stage) of a device's secagg topic; Malformed if it is not one."""
    prefix = f"edge/v{PROTOCOL_VERSION}/{check_fleet(fleet)}/devices/"
    parts = topic[len(prefix):].split("/") if topic.startswith(prefix) else []
    if len(parts) != 3 or parts[1] != "secagg" or parts[2] not in SECAGG_DEVICE_STAGES \
            or not _DEVICE.match(parts[0]):
        raise Malformed(f"topic {topic[:256]!r} is not a secagg topic of fleet {fleet!r}")
    return bytes.fromhex(parts[0]), parts[2]


# Presence payloads. Not signed: the broker's ACL lets only the board itself write its
# status topic, and presence only steers cohort selection (docs/protocol.md, "Presence").
ONLINE = b"online"
OFFLINE = b"offline"


def device_from_status_topic(fleet: str, topic: str) -> bytes:
    """The device id named by a status topic; Malformed if it is not one."""
    return _device_from(fleet, topic, "/status")


def device_from_update_topic(fleet: str, topic: str) -> bytes:
    """The device id named by an update topic; Malformed if it is not one."""
    return _device_from(fleet, topic, "/update")


def device_from_skip_topic(fleet: str, topic: str) -> bytes:
    """The device id named by a skip-report topic; Malformed if it is not one."""
    return _device_from(fleet, topic, "/skip")


def _device_from(fleet: str, topic: str, suffix: str) -> bytes:
    prefix = f"edge/v{PROTOCOL_VERSION}/{check_fleet(fleet)}/devices/"
    if not (topic.startswith(prefix) and topic.endswith(suffix)):
        raise Malformed(f"topic {topic!r} is not a{'n' if suffix == '/update' else ''} "
                        f"{suffix[1:]} topic of fleet {fleet!r}")
    hexid = topic[len(prefix):-len(suffix)]
    if not _DEVICE.match(hexid):
        raise Malformed(f"topic {topic!r} does not name a device id")
    return bytes.fromhex(hexid)
