"""Broker settings ([broker] table) and paho-mqtt clients made from them.

Everything here uses MQTT 3.1.1 only, so the embedded amqtt broker works;
paho's VERSION2 callback API is chosen explicitly (paho 2.x silently falls
back to the deprecated VERSION1 callbacks otherwise).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import secrets
import socket
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt

from edge.errors import ConfigError
from edge.state_files import write_durably
from edge.toml_config import Table

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
BROKER_KEYS = ("url", "ca_file", "cert_file", "key_file", "username", "password_file",
               "keepalive")
RECONNECT_MIN_DELAY = 1
RECONNECT_MAX_DELAY = 30


@dataclass(frozen=True)
class BrokerSettings:
    """Where the broker is and how to authenticate to it."""

    host: str
    port: int
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    username: str | None = None
    password_file: Path | None = None
    keepalive: int = 60

    @property
    def url(self) -> str:
        """The broker as an ``mqtt://`` or ``mqtts://`` URL."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    @classmethod
    def from_url(cls, url: str, where: str = "broker") -> BrokerSettings:
        """Settings for a plain URL with no credentials (tests, the demo)."""
        return cls.from_mapping({"url": url}, where)

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any], where: str = "broker",
                     base: Path | None = None) -> BrokerSettings:
        """Parse and validate a ``[broker]`` table; ConfigError names the bad key.

        Relative file paths are taken relative to ``base`` (the configuration
        file's folder) when given.
        """
        return cls.from_table(Table(table, where, BROKER_KEYS, base or Path.cwd()))

    @classmethod
    def from_table(cls, table: Table) -> BrokerSettings:
        """Validate the ``[broker]`` table of a configuration."""
        if not table.has("url"):
            raise table.error("url", "required, e.g. \"mqtt://127.0.0.1:1883\"")
        host, port, tls = _parse_url(table.string("url"), table.where("url"))
        files = {k: table.path(k, required=False) for k in ("ca_file", "cert_file", "key_file",
                                                             "password_file")}
        if not tls:
            for key in ("ca_file", "cert_file", "key_file"):
                if files[key] is not None:
                    raise table.only_with(key, "an mqtts:// url")
        if (files["cert_file"] is None) != (files["key_file"] is None):
            missing = "key_file" if files["key_file"] is None else "cert_file"
            raise table.error(missing, "cert_file and key_file go together")
        username = table.string("username", None)
        if files["password_file"] is not None and username is None:
            raise table.error("password_file", f"needs {table.where('username')}")
        keepalive = table.integer("keepalive", 60, lo=5, hi=65535)
        return cls(host=host, port=port, tls=tls, ca_file=files["ca_file"],
                   cert_file=files["cert_file"], key_file=files["key_file"],
                   username=username, password_file=files["password_file"], keepalive=keepalive)


def _parse_url(url: str, key: str) -> tuple[str, int, bool]:
    """Host, port and TLS flag of an mqtt:// or mqtts:// URL."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"{key}: {url!r} is not a valid URL ({exc})") from None
    if parts.scheme not in DEFAULT_PORTS:
        raise ConfigError(f"{key}: scheme must be mqtt:// or mqtts://, got {url!r}")
    if not parts.hostname:
        raise ConfigError(f"{key}: {url!r} names no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"{key}: {url!r} must be scheme://host:port only")
    if parts.username or parts.password:
        raise ConfigError(f"{key}: put credentials in username/password_file, not the URL")
    return parts.hostname, port or DEFAULT_PORTS[parts.scheme], parts.scheme == "mqtts"


def read_password(settings: BrokerSettings) -> str | None:
    """The password from ``password_file`` (first line, stripped), if any."""
    if settings.password_file is None:
        return None
    try:
        text = settings.password_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"broker.password_file: cannot read it ({exc})") from None
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise ConfigError("broker.password_file: the file is empty")
    return lines[0].strip()


def client_id(settings: BrokerSettings, role: str, secret: bytes | None = None) -> str:
    """The MQTT client id of a daemon or the aggregator (``role`` names it without credentials).

    With a user name the id is the user name: a broker that authenticates must
    bind the two (Mosquitto ``use_username_as_clientid``, deploy/mosquitto), so
    nobody else can present this id, and sending it keeps our logs and the
    broker's view the same. Without credentials nothing binds the id, so it gets
    a suffix nobody can guess (an id is all it takes to kick a client off or to
    take over its persistent session): derived from ``secret`` when the id must
    stay the same across restarts, random otherwise.
    """
    if settings.username is not None:
        return settings.username
    if secret is not None:
        digest = hashlib.sha256(b"edge/v1 mqtt client id\x00" + secret).hexdigest()
        return f"{role}-{digest[:32]}"
    return f"{role}-{secrets.token_hex(16)}"


SESSION_SECRET = "mqtt-session.secret"


def session_secret(folder: Path) -> bytes:
    """A 32-byte secret kept in ``folder`` (0600), created once: it keeps a persistent
    session's unguessable client id the same across restarts (``client_id``)."""
    path = Path(folder) / SESSION_SECRET
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        data = b""
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the MQTT session secret: {exc}") from exc
    if len(data) == 32:
        return data
    new = secrets.token_bytes(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_durably(path, new, mode=0o600)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write the MQTT session secret: {exc}") from exc
    return new


ConnectFailure = Callable[[str, int], None]
"""Told of every failed connection attempt: the cause, and the seconds until the next."""


def describe_connect_error(exc: BaseException | None) -> str:
    """One line naming why a connection attempt failed (TLS and socket errors alike)."""
    if exc is None:
        return "connection failed"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: {exc.verify_message or exc.reason} (check broker.ca_file)"
    if isinstance(exc, ssl.SSLError):
        # An alert from the broker, e.g. "tlsv1 alert unknown ca" when it does not trust
        # our client certificate.
        return f"TLS: {exc.reason or exc}"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _no_delay(_client: mqtt.Client, _userdata: Any, sock: Any) -> None:
    """Send each MQTT packet at once (TCP_NODELAY).

    A client writes small packets (PUBACKs) that the broker never answers, so their TCP
    ACKs are delayed (up to 40 ms on Linux); with Nagle's algorithm on, the client's next
    write then waits for that ACK. Measured: a published model reached the broker 20-35 ms
    late, most of a 10-device round.
    """
    with contextlib.suppress(OSError, AttributeError):  # a unix socket has no Nagle
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class TopicFilter:
    """An MQTT topic filter (``+`` one level, ``#`` the rest), split once.

    paho's ``topic_matches_sub`` builds a matcher tree on every call (about 0.1 ms); the
    aggregator matched each message against up to four filters.
    """

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self._levels = pattern.split("/")

    def matches(self, topic: str) -> bool:
        """True when ``topic`` (a topic name, no wildcards) matches this filter."""
        if topic.startswith("$") and self._levels[0] in ("+", "#"):
            return False  # MQTT 3.1.1 4.7.2: wildcards never match $-topics at level 0
        levels = topic.split("/")
        for i, want in enumerate(self._levels):
            if want == "#":
                return True
            if i >= len(levels) or (want != "+" and want != levels[i]):
                return False
        return len(levels) == len(self._levels)


class Client(mqtt.Client):
    """paho's client, keeping why a connection attempt failed and when it will retry.

    paho retries on its own but drops the cause (its loop catches the OSError and
    calls ``on_connect_fail`` with no argument); an operator needs both. The retry
    time mirrors ``reconnect_delay_set``: the delay doubles after each failure up to
    the maximum and starts again from the minimum once a CONNACK accepts us.
    """

    def __init__(self, *args: Any, on_failure: ConnectFailure | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.last_connect_error: BaseException | None = None
        self._failures = 0
        self._on_failure = on_failure
        self.on_connect_fail = self._connect_failed
        self.on_socket_open = _no_delay

    def reconnect(self) -> mqtt.MQTTErrorCode:
        """paho's reconnect, remembering the error of a failed attempt."""
        try:
            return super().reconnect()
        except OSError as exc:
            self.last_connect_error = exc
            raise

    def next_retry(self) -> int:
        """Count one failed attempt; the seconds paho waits before the next one."""
        self._failures += 1
        return min(RECONNECT_MIN_DELAY * 2 ** min(self._failures - 1, 16), RECONNECT_MAX_DELAY)

    def loop_stop(self) -> mqtt.MQTTErrorCode:
        """paho's loop_stop without its race after ``disconnect()``.

        The network thread clears ``_thread`` as its last step once the disconnect ends its
        loop; if that happens between paho's ``is None`` check and its ``join``, paho raises
        AttributeError (seen when 100 daemons of a device host stopped together). The thread
        has finished then, which is what loop_stop waits for."""
        try:
            return super().loop_stop()
        except AttributeError:
            if self._thread is not None:
                raise
            return mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS

    def accepted(self) -> None:
        """A CONNACK accepted us: the next failure waits the minimum delay again."""
        self._failures = 0
        self.last_connect_error = None

    def _connect_failed(self, _client: mqtt.Client, _userdata: Any) -> None:
        retry = self.next_retry()
        if self._on_failure is not None:
            self._on_failure(describe_connect_error(self.last_connect_error), retry)


def log_connect_failure(logger: logging.Logger, who: str, url: str) -> ConnectFailure:
    """A ConnectFailure that logs one WARNING line per failed attempt."""
    def report(cause: str, retry_in: int) -> None:
        logger.warning("%s: cannot connect to %s: %s; retrying in %d s", who, url, cause,
                       retry_in)
    return report


def make_client(settings: BrokerSettings, client_id: str, *, clean_session: bool,
                manual_ack: bool = False, on_failure: ConnectFailure | None = None,
                mqtt5: bool = False) -> Client:
    """A paho client (MQTT 3.1.1, VERSION2 callbacks) configured but not connected.

    ``on_failure`` hears about every failed connection attempt (see ``Client``). With
    ``mqtt5`` (cohort workers: shared subscriptions) it speaks MQTT 5; its session is
    then chosen at connect (``connect_async``'s ``session_expiry_s``).
    """
    client = Client(
        callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=None if mqtt5 else clean_session,
        protocol=mqtt.MQTTv5 if mqtt5 else mqtt.MQTTv311,
        manual_ack=manual_ack,
        on_failure=on_failure,
    )
    if settings.tls:
        try:
            client.tls_set(
                ca_certs=str(settings.ca_file) if settings.ca_file else None,
                certfile=str(settings.cert_file) if settings.cert_file else None,
                keyfile=str(settings.key_file) if settings.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise ConfigError(f"broker TLS files cannot be used: {exc}") from None
    if settings.username is not None:
        client.username_pw_set(settings.username, read_password(settings))
    client.reconnect_delay_set(min_delay=RECONNECT_MIN_DELAY, max_delay=RECONNECT_MAX_DELAY)
    return client


def connect_async(client: mqtt.Client, settings: BrokerSettings, *,
                  session_expiry_s: int | None = None) -> None:
    """Start connecting in the background (paho retries with backoff on its own).

    ``session_expiry_s`` (MQTT 5 clients only): resume the session, and let the broker
    keep it (with what was not acknowledged) this long after a disconnect.
    """
    if session_expiry_s is None:
        client.connect_async(settings.host, settings.port, keepalive=settings.keepalive)
        return
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = session_expiry_s
    client.connect_async(settings.host, settings.port, keepalive=settings.keepalive,
                         clean_start=False, properties=props)


@dataclass(frozen=True)
class Pending:
    """A QoS 1 publish paho has queued: its message id and the PUBACK count before it."""

    mid: int
    since: int


class PubAcks:
    """PUBACKs by message id, so a publish made while offline can be awaited.

    paho queues a QoS 1 message published while disconnected and sends it after
    reconnecting, but its ``is_published()``/``wait_for_publish()`` raise
    RuntimeError for such a message. Message ids are reused (1..65535), so an
    acknowledgement counts only if it arrived after the publish was made.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._seq = 0
        self._acked: dict[int, int] = {}

    def attach(self, client: mqtt.Client) -> None:
        """Make ``client`` report its PUBACKs here (sets ``on_publish``)."""
        client.on_publish = self._on_publish

    def _on_publish(self, _client: mqtt.Client, _userdata: Any, mid: int, _reason: Any,
                    _properties: Any) -> None:
        with self._cond:
            self._seq += 1
            self._acked[mid] = self._seq
            self._cond.notify_all()

    def publish(self, client: mqtt.Client, topic: str, payload: bytes, *,
                retain: bool = False) -> Pending | None:
        """Publish with QoS 1; None if paho refused to queue it (its queue is full)."""
        with self._cond:
            since = self._seq
        info = client.publish(topic, payload, qos=1, retain=retain)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            return None
        return Pending(info.mid, since)

    def done(self, pending: Pending) -> bool:
        """True once the broker acknowledged this publish."""
        with self._cond:
            return self._acked.get(pending.mid, 0) > pending.since

    def wait(self, pending: Pending, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the PUBACK; True if it came."""
        with self._cond:
            return self._cond.wait_for(
                lambda: self._acked.get(pending.mid, 0) > pending.since, timeout)
