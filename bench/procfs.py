"""What Linux's /proc tells the benchmarks about processes: CPU time, resident memory, a
process's descendants and the machine's load. Each answers None (or "unknown") where it
cannot be seen: no /proc, or the process is gone."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def _stat_fields(pid: int | str) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command's name (which is in parentheses and
    may hold spaces): state, parent's pid, ..., utime and stime at 11 and 12 (fields 14 and
    15 of proc(5))."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_cpu(pid: int) -> float | None:
    """CPU seconds (user and system) `pid` alone has used so far."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (an `omnicrm serve` supervisor's web and worker processes)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        fields = _stat_fields(entry.name)
        if fields is not None:
            with contextlib.suppress(ValueError):
                parents[int(entry.name)] = int(fields[1])
    found = [pid]
    for candidate in found:
        found.extend(child for child, parent in sorted(parents.items()) if parent == candidate)
    return found


def tree_cpu(pid: int) -> float | None:
    """CPU seconds of `pid` and every descendant; None when `pid` itself cannot be seen."""
    total = [process_cpu(member) for member in process_tree(pid)]
    return None if total[0] is None else sum(value or 0.0 for value in total)


def rss_kib(pid: int) -> int | None:
    """VmRSS of `pid` in KiB."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


def load_average() -> str:
    """The 1-, 5- and 15-minute load averages (the README publishes them with the figures)."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"
