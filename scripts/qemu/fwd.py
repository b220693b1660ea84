#!/usr/bin/env python3
"""Relay stdin/stdout to a TCP service on the host's loopback (for QEMU's guestfwd).

boot.sh's ``--fwd GPORT:HPORT`` runs ``guestfwd=tcp:10.0.2.100:GPORT-cmd:fwd.py HPORT``:
QEMU spawns this for every connection the guest opens to 10.0.2.100:GPORT, with the
connection on stdin/stdout (a ``tcp:`` chardev target would be one connection for the
whole run, made at start). Only 127.0.0.1 is ever reached.

    fwd.py PORT
"""

from __future__ import annotations

import os
import selectors
import socket
import sys


def relay(port: int) -> None:
    sock = socket.create_connection(("127.0.0.1", port))
    sel = selectors.DefaultSelector()
    sel.register(0, selectors.EVENT_READ)
    sel.register(sock, selectors.EVENT_READ)
    open_ends = 2
    while open_ends:
        for key, _ in sel.select():
            if key.fileobj == 0:
                data = os.read(0, 65536)
                if not data:
                    sel.unregister(0)
                    open_ends -= 1
                    sock.shutdown(socket.SHUT_WR)
                    continue
                sock.sendall(data)
            else:
                data = sock.recv(65536)
                if not data:
                    return  # the service closed: end the guest's connection too
                view = memoryview(data)
                while view:
                    view = view[os.write(1, view):]


if __name__ == "__main__":
    if len(sys.argv) != 2 or not sys.argv[1].isdigit():
        sys.exit("usage: fwd.py PORT")
    try:
        relay(int(sys.argv[1]))
    except OSError as exc:
        sys.exit(f"qemu/fwd: 127.0.0.1:{sys.argv[1]}: {exc}")
