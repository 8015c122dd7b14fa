"""Run the irc CLI in this process, then print this process's peak RSS (VmHWM, bytes)
on the last line of stderr. Measuring inside the process matters: a forked child's
ru_maxrss also counts the parent's pages from before exec."""

import sys


def _vm_hwm() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return -1


if __name__ == "__main__":
    from irc.cli import main

    sys.argv = ["irc", *sys.argv[1:]]
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code or 0
    print(f"peak_rss_bytes={_vm_hwm()}", file=sys.stderr)
    sys.exit(code)
