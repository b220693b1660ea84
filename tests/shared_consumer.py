#!/usr/bin/env python3
"""A member of an MQTT 5 shared subscription, for tests: records payloads, acks or not.

Usage: shared_consumer.py PORT CLIENT_ID OUT_FILE ack|noack FILTER. Each received payload
is appended to OUT_FILE (one line, flushed) before it is acknowledged (manual ack), so a
SIGKILL leaves exactly the unacknowledged ones recorded but not acked.
"""

from __future__ import annotations

import sys
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


def main() -> None:
    port, cid, out, mode, topic_filter = sys.argv[1:6]
    log = open(out, "a", buffering=1, encoding="ascii")  # noqa: SIM115 -- lives as long as the process
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid,
                         protocol=mqtt.MQTTv5, manual_ack=True)

    def on_connect(c: mqtt.Client, _u: Any, _f: Any, _rc: Any, _p: Any) -> None:
        c.subscribe(topic_filter, qos=1)

    def on_message(c: mqtt.Client, _u: Any, m: mqtt.MQTTMessage) -> None:
        log.write(m.payload.decode("ascii") + "\n")
        if mode == "ack":
            c.ack(m.mid, m.qos)

    client.on_connect, client.on_message = on_connect, on_message
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600  # the session (and what it did not ack) outlives a kill
    client.connect("127.0.0.1", int(port), clean_start=False, properties=props)
    client.loop_forever()


if __name__ == "__main__":
    main()
