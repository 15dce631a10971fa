"""Which process a FUSE request comes from.

The kernel tells a filesystem the thread that made a request. Whether two requests come from
the same process (the one that opened a file and the one closing it) is a question about
thread groups, answered here from ``/proc``.
"""

from __future__ import annotations


def thread_group(tid: int) -> int:
    """The process (thread group) of thread ``tid``; ``tid`` itself if ``/proc`` cannot tell."""
    if tid <= 0:
        return tid
    try:
        with open(f"/proc/{tid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"Tgid:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return tid
