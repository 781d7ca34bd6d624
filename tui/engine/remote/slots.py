"""llama-server's slot files: a long chat's KV cache saved on the server, restored later.

llama.cpp's server keeps the KV cache of the last prompt in each slot and
reuses its prefix (its own prompt cache), but one chat evicts another, and a
restarted server starts empty. Started with ``--slot-save-path DIR``, it can
write a slot's cache to a file in DIR and read it back
(``POST /slots/{id}?action=save|restore`` with a ``filename``). Then:

- after an answer in a chat of at least :data:`MIN_TOKENS`, the slot is saved
  under a name derived from the server, its model and the chat;
- before a turn of a chat the slot may not hold (the first turn after our
  start, or after another chat), the chat's file is restored, if we saved one.

The server checks what it restores (the tokens it holds are in the file, and
it reuses only the prefix they share with the new prompt), so a stale file
costs a re-read, never a wrong answer. Whether the server can do it is found
with a save it refuses: no ``--slot-save-path`` gives 501 ("not supported"),
and a file name it rejects gives 400 without writing anything. Requests are
pinned to one slot (``id_slot``) while the files are in use, so that the slot
saved is the one that answered.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tui.core import paths

MIN_TOKENS = 256  # shorter chats are cheap to read again: not worth a file
SLOT = 0
_PROBE_NAME = "../llama-tui-probe"  # never valid: the server refuses it without writing
_MAX_FAILURES = 3  # saves that fail for other reasons before we stop trying


class SlotFiles:
    """Saving and restoring one endpoint's slot for our chats (llama.cpp's server only)."""

    def __init__(self, root_url: str, marks: Path | None = None) -> None:
        self.root_url = root_url.rstrip("/")
        self.marks = marks if marks is not None else paths.cache_dir() / "server-slots"
        self.available: bool | None = None  # None: not asked yet
        self.why_not = ""  # what the server said, for the log and the tests
        self.model = ""
        self.holds: Any = None  # the chat the slot holds, as far as we know
        self._failures = 0

    def check(
        self, kind: str, model: str, props: dict[str, Any], post: Callable[..., httpx.Response]
    ) -> None:
        """A (re)checked server: its model may have changed, and what the slot holds.

        Only llama.cpp's server has slot files; ``props`` is its ``/props``
        (the model file and build go into the files' names).
        """
        self.holds = None
        if kind != "llama.cpp":
            self.available = False
            return
        self.model = f"{model}|{props.get('model_path', '')}|{props.get('build_info', '')}"
        self.probe(post)

    def stats(self, usage: dict[str, Any], restored: bool) -> dict[str, Any]:
        """For GenerationFinished: prompt tokens the server reused, and whether we restored."""
        details = usage.get("prompt_tokens_details")
        cached = details.get("cached_tokens") if isinstance(details, dict) else None
        return {
            **({"cached_tokens": cached} if isinstance(cached, int) else {}),
            **({"slot_restored": restored} if self.available else {}),
        }

    def probe(self, post: Callable[..., httpx.Response]) -> bool:
        """Ask the server whether it saves slots, with a save it must refuse."""
        try:
            response = post(self._url("save"), json={"filename": _PROBE_NAME})
        except httpx.HTTPError as exc:
            self.available, self.why_not = False, f"slot save probe failed: {exc}"
            return False
        body = response.text[:500]
        if response.status_code == 400 and "filename" in body.lower():
            self.available = True  # it has a save path, and checked our (bad) name
        else:
            self.available = False
            self.why_not = f"{response.status_code}: {body}"
        return self.available

    def payload_fields(self) -> dict[str, Any]:
        """Fields for the completion request: pin the slot we save and restore."""
        return {"id_slot": SLOT, "cache_prompt": True} if self.available else {}

    def filename(self, chat: Any) -> str:
        digest = hashlib.sha256(f"{self.root_url}|{self.model}|{chat}".encode()).hexdigest()
        return f"llama-tui-{digest[:32]}.bin"

    def restore(self, post: Callable[..., httpx.Response], chat: Any) -> bool:
        """Put ``chat``'s saved cache into the slot unless it holds it already."""
        if not self.available or chat is None or self.holds == chat:
            return False
        name = self.filename(chat)
        if not (self.marks / name).exists():
            return False  # never saved: a failed restore would empty the slot for nothing
        try:
            response = post(self._url("restore"), json={"filename": name})
        except httpx.HTTPError:
            self.holds = None
            return False
        if response.status_code != 200:
            # The file is gone or unusable (another model, a smaller window): the server
            # has emptied the slot, and the turn reads the chat again.
            self.holds = None
            self._forget(name)
            return False
        self.holds = chat
        return True

    def save(self, post: Callable[..., httpx.Response], chat: Any, tokens: int) -> bool:
        """Save the slot (which holds ``chat`` now) if the chat is long enough."""
        self.holds = chat
        if not self.available or chat is None or tokens < MIN_TOKENS:
            return False
        name = self.filename(chat)
        try:
            response = post(self._url("save"), json={"filename": name})
        except httpx.HTTPError:
            return self._failed("slot save failed: no answer")
        if response.status_code == 501:
            self.available, self.why_not = False, response.text[:500]
            return False
        if response.status_code != 200:
            return self._failed(f"slot save failed: {response.status_code}")
        self._failures = 0
        self._mark(name)
        return True

    def _failed(self, why: str) -> bool:
        self._failures += 1
        self.why_not = why
        if self._failures >= _MAX_FAILURES:
            self.available = False
        return False

    def _url(self, action: str) -> str:
        return f"{self.root_url}/slots/{SLOT}?action={action}"

    def _mark(self, name: str) -> None:
        """Remember that the server holds ``name`` (an empty file, 0600 in a 0700 dir)."""
        with contextlib.suppress(OSError):
            paths.ensure_private_dir(self.marks)
            fd = os.open(self.marks / name, os.O_WRONLY | os.O_CREAT, 0o600)
            os.close(fd)

    def _forget(self, name: str) -> None:
        with contextlib.suppress(OSError):
            (self.marks / name).unlink(missing_ok=True)
