"""The systemd readiness protocol (``sd_notify``), so that a ``Type=notify`` unit is ready
only once the mount answers.

systemd passes a datagram socket in ``$NOTIFY_SOCKET`` (a path, or an abstract name starting
with ``@``); a service writes ``READY=1`` to it when it can serve, ``STOPPING=1`` when it
stops. Without the variable there is nobody to tell, and nothing is sent. The protocol is a
few lines: no dependency is needed for it.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


def notify(state: str) -> bool:
    """Send ``state`` (``"READY=1"``, ``"STOPPING=1"``, ...) to systemd; False if nobody listens."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        log.warning("could not tell systemd %r (NOTIFY_SOCKET=%s): %s", state, address.lstrip("\0"), exc)
        return False
    return True
