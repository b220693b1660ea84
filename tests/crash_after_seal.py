"""``edge daemon`` that SIGKILLs itself when it is about to publish an update it sealed.

Run as ``python tests/crash_after_seal.py --config daemon.toml``: the crash lands
after the TA spent the budget and sealed the update, before any byte of it
reaches the network (a board losing power at that moment). Updates published
again from the outbox do not trigger it, so the next start delivers them.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import paho.mqtt.client as mqtt

from edge.cli import main
from edge.tee import TrustedApp

_sealed_here = False
_seal = TrustedApp.train_and_seal
_publish = mqtt.Client.publish


def _train_and_seal(self: TrustedApp, *args: Any, **kwargs: Any) -> bytes:
    global _sealed_here
    sealed = _seal(self, *args, **kwargs)
    _sealed_here = True
    return sealed


def _publish_or_crash(self: mqtt.Client, topic: str, *args: Any, **kwargs: Any) -> Any:
    if _sealed_here and topic.endswith("/update"):
        os.kill(os.getpid(), signal.SIGKILL)
    return _publish(self, topic, *args, **kwargs)


TrustedApp.train_and_seal = _train_and_seal  # type: ignore[method-assign]
mqtt.Client.publish = _publish_or_crash  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(main(["daemon", *sys.argv[1:]]))
