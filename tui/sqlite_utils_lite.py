"""sqlite-utils without its optional numpy/pandas imports.

sqlite-utils imports numpy (and tries pandas) at import time, only for
conversions llama-tui never uses. Hiding them while it loads saves about
0.1 s of every start-up; other code can still import numpy afterwards.
"""

from __future__ import annotations

import sys


def _load():  # type: ignore[no-untyped-def]
    hidden = [name for name in ("numpy", "pandas") if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # makes `import numpy` fail
    try:
        import sqlite_utils
    finally:
        for name in hidden:
            if sys.modules.get(name) is None:
                del sys.modules[name]
    return sqlite_utils


sqlite_utils = _load()
