"""The FUSE layer: a results store as a filesystem. It translates; the store decides.

The defaults below are importable without the FUSE binding (the CLI shows them in --help
on machines without libfuse).
"""

#: FUSE worker threads (measured: docs/performance.md). One would serve reads faster, but a
#: single-threaded loop lets one slow commit (an fsync, a lease wait) stall every request.
DEFAULT_THREADS = 4

#: Seconds the kernel may cache names and attributes: a change made outside the mount shows
#: within this time.
DEFAULT_CACHE_TIMEOUT = 1.0

#: Memory all write buffers of a mount may use together before they spill to disk.
DEFAULT_MEMORY_BUDGET = 64 * 1024 * 1024

#: Bytes all uncommitted writes of a mount may hold together (memory and disk); then ENOSPC.
DEFAULT_PENDING_LIMIT = 1024 * 1024 * 1024
