"""This process's resident memory, read from /proc (Linux)."""

import resource


def current():
    """Resident bytes now."""
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def peak():
    """The most resident bytes so far: VmHWM, not ru_maxrss, which starts
    at the parent's RSS at fork."""
    with open('/proc/self/status') as f:
        return [int(line.split()[1]) * 1024 for line in f
                if line.startswith('VmHWM:')][0]
