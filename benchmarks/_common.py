"""Shared helpers for the side-by-side benchmarks (each script prints one JSON object)."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path


def peak_rss_mb_of(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, dict]:
    """Run ``cmd`` in a fresh process (``env``: its environment, default this one's); return (its own
    reported peak RSS in MB, its JSON)."""
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} failed: {proc.stderr[-3000:]}")
    payload = json.loads(proc.stdout.strip().splitlines()[-1])
    return payload["peak_rss_mb"], payload


def own_peak_rss_mb() -> float:
    """This process's own peak RSS.

    ``VmHWM`` belongs to the process image and starts afresh at exec; ``ru_maxrss`` survives
    exec on Linux, so a child would report its parent's peak when that was higher.
    """
    peak = _status_mb("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    """This process's resident memory now (``VmRSS``; 0 where /proc is not available)."""
    return _status_mb("VmRSS") or 0.0


def _status_mb(field: str) -> float | None:
    """A memory field of ``/proc/self/status`` in MB, or None."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def emit(obj: dict) -> None:
    print(json.dumps(obj))
    sys.stdout.flush()


HERE = Path(__file__).resolve().parent
