"""Whether a process is still there, for files and rows that name their writer's pid.

The store asks it of an answer's writer (``host:pid``), the local engine of
the process owning a directory of saved KV states; both clean up after a
process that is gone, so both need the same, careful answer.
"""

from __future__ import annotations

import os


def pid_exists(pid: int) -> bool:
    """True if a process with this pid exists now (ours, or anyone's).

    Another user's process counts (we may not signal it, but it is there).
    Zero, negative and out-of-range numbers name no single process: False.
    A pid can be reused, so True means "perhaps still the writer", never
    "certainly": callers only ever use False, to clean up after the dead.
    """
    if pid <= 0:
        return False  # 0 and negatives address process groups, not a process
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True  # someone else's process: alive
    except (OSError, OverflowError):  # no such process (or no such pid at all)
        return False
    return True
