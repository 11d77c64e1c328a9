"""How many cores this process may use — one rule for the local stack's replicas and the deflate
pool (shared/archive/blocks.py)."""

from __future__ import annotations

import os
from pathlib import Path

CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # cgroup v2: "<quota> <period>" or "max <period>"


def usable_cpus(cpu_max: Path | None = None) -> int:
    """The cores this process may use, not the host's: its affinity (e.g. under ``taskset``), and
    at most its cgroup's CPU quota rounded up (a container started with ``--cpus=1`` on a bigger
    host sees every core, but the kernel throttles it to one's worth of time)."""
    affinity = getattr(os, "sched_getaffinity", None)
    cpus = len(affinity(0)) if affinity is not None else os.cpu_count() or 1
    try:
        quota, period = (cpu_max or CPU_MAX).read_text().split()[:2]
        if quota != "max" and int(period) > 0:
            cpus = min(cpus, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):  # no cgroup v2 here, or a line this code does not know: no quota
        pass
    return cpus
