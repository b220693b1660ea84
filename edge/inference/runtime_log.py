"""The TFLite runtime's own stderr lines, moved into our log.

LiteRT and tflite-runtime print through the C++ runtime's minimal logger
straight to file descriptor 2 (e.g. ``INFO: Created TensorFlow Lite XNNPACK
delegate for CPU.``), which no environment variable of theirs silences. An
operator's log should hold our lines only, so while an interpreter is built the
descriptor is pointed at a temporary file; its ``INFO:`` lines go to our logger at
debug level and anything else goes back to stderr unchanged, so nothing is lost.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator

# Several daemons of one process (the demo) build interpreters at once; fd 2 is
# one per process, so redirections must not interleave (a restore would then
# point fd 2 at another thread's deleted file).
_FD2 = threading.Lock()


@contextlib.contextmanager
def runtime_messages(log: logging.Logger) -> Iterator[None]:
    """Route what the runtime writes to fd 2 during the block into ``log``."""
    with _FD2, tempfile.TemporaryFile() as sink:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
        finally:
            os.close(saved)
        sink.seek(0)
        text = sink.read().decode("utf-8", "replace")
    passthrough = []
    for line in text.splitlines(keepends=True):
        if line.startswith("INFO: "):
            log.debug("runtime: %s", line[6:].rstrip())
        else:
            passthrough.append(line)
    if passthrough:
        sys.stderr.write("".join(passthrough))
        sys.stderr.flush()
