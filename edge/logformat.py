"""The one log format of the daemon and the aggregator: key=value or JSON lines.

kv:   ``ts=2026-12-01T11:42:00.123Z level=WARNING logger=edge.mqtt msg="..." key=value``
      (logfmt, as Prometheus and Loki read it; values with spaces, quotes or ``=``
      are double-quoted with ``\\"`` and ``\\\\`` escaped, newlines as ``\\n``).
json: one object per line with the same keys, for journald/Loki/jq.

Our daemon writes its events as key=value messages already (``device=board-7
round=12 step=train result=sealed``): such pairs at the end of a message are lifted
into fields of the line (``msg`` keeps the free text before them and is left out when
there is none), so both formats carry them as fields, not as a quoted string.
Fields given with ``extra={...}`` follow. A field whose name says it holds
a secret (key material, password, token) is never written, whatever its value:
the log is read by more people than the TA's keys are.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

LOG_FORMATS = ("kv", "json")
LOG_FORMAT_ENV = "EDGE_LOG_FORMAT"
DEFAULT_LOG_FORMAT = "kv"

# What a LogRecord carries by itself; anything else came in through ``extra``.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName"}
_SECRET_NAME = re.compile(r"(secret|passw|private|token|(^|_)key($|_)|seed)", re.IGNORECASE)
_BARE = re.compile(r"^[A-Za-z0-9_.:/@+,-]+$")


def _timestamp(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items()
            if k not in _RECORD_FIELDS and not k.startswith("_") and not _SECRET_NAME.search(k)}


_PAIR = re.compile(r'([A-Za-z_][A-Za-z0-9_.-]*)=("(?:[^"\\]|\\.)*"|[^\s"]*)(?:\s+|$)')


def split_pairs(message: str) -> tuple[str, dict[str, str]]:
    """(free text, trailing key=value pairs) of a message; no pairs unless all the tail is."""
    text = message.rstrip()
    for start in [0] + [m.end() for m in re.finditer(r"\s+", text)]:
        pairs: dict[str, str] = {}
        pos = start
        while pos < len(text):
            m = _PAIR.match(text, pos)
            if m is None:
                break
            value = m.group(2)
            if value.startswith('"'):
                value = re.sub(r"\\(.)", lambda e: "\n" if e.group(1) == "n" else e.group(1),
                               value[1:-1])
            pairs.setdefault(m.group(1), value)
            pos = m.end()
        if pos >= len(text) and pairs:
            return text[:start].rstrip(), pairs
    return message, {}


def kv_value(value: Any) -> str:
    """A value as logfmt writes it: bare when it can be, else double-quoted and escaped."""
    text = value if isinstance(value, str) else json.dumps(value, default=str) \
        if isinstance(value, (list, dict)) else str(value)
    if text and _BARE.match(text):
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


class LineFormatter(logging.Formatter):
    """Formats a record as one kv or JSON line (the exception, if any, folded into it)."""

    def __init__(self, fmt: str = DEFAULT_LOG_FORMAT) -> None:
        if fmt not in LOG_FORMATS:
            raise ValueError(f"log format {fmt!r}: expected one of {', '.join(LOG_FORMATS)}")
        super().__init__()
        self.fmt = fmt

    def fields(self, record: logging.LogRecord) -> dict[str, Any]:
        """The line's fields in order: ts, level, logger, msg, extras, exc."""
        out: dict[str, Any] = {"ts": _timestamp(record.created), "level": record.levelname,
                               "logger": record.name}
        text, pairs = split_pairs(record.getMessage())
        if text or not pairs:
            out["msg"] = text
        for k, v in [*pairs.items(), *_extras(record).items()]:
            if not _SECRET_NAME.search(k):
                out.setdefault(k if k not in out else f"field_{k}", v)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return out

    def format(self, record: logging.LogRecord) -> str:
        fields = self.fields(record)
        if self.fmt == "json":
            return json.dumps(fields, default=str, separators=(",", ":"))
        return " ".join(f"{k}={kv_value(v)}" for k, v in fields.items())


def resolve_format(flag: str | None) -> str:
    """--log-format, else $EDGE_LOG_FORMAT, else kv; a bad env value is named."""
    if flag is not None:
        return flag
    env = os.environ.get(LOG_FORMAT_ENV)
    if env is None or env == "":
        return DEFAULT_LOG_FORMAT
    if env not in LOG_FORMATS:
        from edge.errors import ConfigError

        raise ConfigError(f"${LOG_FORMAT_ENV}={env!r}: expected one of {', '.join(LOG_FORMATS)}")
    return env


def setup_logging(fmt: str | None, *, verbose: bool, stream: TextIO | None = None,
                  edge_level: int | None = None) -> None:
    """Send our loggers' lines to stderr in one format.

    ``edge.*`` logs at INFO (DEBUG with ``verbose``; ``edge_level`` overrides); other
    libraries (paho, the TFLite runtime's moved lines) only at WARNING and above, so
    their INFO noise stays hidden unless asked for."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(LineFormatter(resolve_format(fmt)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    level = edge_level if edge_level is not None else logging.DEBUG if verbose else logging.INFO
    logging.getLogger("edge").setLevel(level)
