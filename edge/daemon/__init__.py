"""The board daemon: local samples, round tickets and model packages over MQTT."""

from edge.daemon.config import DaemonConfig, DataConfig
from edge.daemon.daemon import Daemon, DaemonStats

__all__ = ["Daemon", "DaemonConfig", "DaemonStats", "DataConfig"]
