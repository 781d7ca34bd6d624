"""How large a window the local engine loads: the chats' wish, capped by the model and memory."""

from __future__ import annotations

MEMORY_SHARE_FOR_KV = 0.5  # a window's KV cache may fill at most this share of free memory


def window_cap(wanted: int, n_ctx_train: int, kv_bytes_per_token: int, available: int) -> int:
    """The window to load: ``wanted``, capped at the training context and at memory.

    A context beyond the training length gives garbage; one whose KV cache
    would not fit in memory when full ends the process later, mid-chat.
    Unknown figures (0) cap nothing; the result is never under 512 tokens.
    """
    n_ctx = wanted
    if n_ctx_train > 0:
        n_ctx = min(n_ctx, n_ctx_train)
    if kv_bytes_per_token > 0 and available > 0:
        fits = int(available * MEMORY_SHARE_FOR_KV) // kv_bytes_per_token
        n_ctx = min(n_ctx, max(fits // 256 * 256, 512))
    return n_ctx


def available_memory() -> int:
    """Bytes of memory available to new allocations (Linux ``MemAvailable``), 0 if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0
