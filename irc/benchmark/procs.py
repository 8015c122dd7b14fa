"""Peak resident memory of bench processes, read from /proc.

``ru_maxrss`` from ``wait4`` is not usable here: Linux carries the high-water mark of the
process that forked (the bench driver, which has PyTorch loaded) across ``exec`` into the
child's figure. ``VmHWM`` in ``/proc/PID/status`` belongs to the child's own address space.
"""

from __future__ import annotations

import subprocess
import tempfile
import threading
from pathlib import Path


def vm_hwm_mb(pid: int | str = "self") -> float | None:
    """Peak RSS (VmHWM) of a live process in MiB, or None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        return None
    return None


def run_measured(cmd: list[str], env: dict[str, str] | None = None,
                 timeout: float = 1800) -> tuple[int, str, str, float | None]:
    """Run to completion; (exit code, stdout, stderr, peak RSS in MiB).

    The peak is polled every 2 ms while the process lives (VmHWM only grows), so it can
    miss only what the process allocates in its last 2 ms.
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env=env)
        peak: list[float] = []
        done = threading.Event()

        def poll() -> None:
            while not done.wait(0.002):
                value = vm_hwm_mb(proc.pid)
                if value is not None:
                    peak.append(value)

        watcher = threading.Thread(target=poll, daemon=True)
        watcher.start()
        try:
            code = proc.wait(timeout=timeout)
        finally:
            done.set()
            watcher.join()
        out.seek(0)
        err.seek(0)
        return code, out.read(), err.read(), max(peak, default=None)
