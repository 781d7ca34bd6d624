"""What a comparison can vary: the persona, the model, the sampling (see :mod:`.compare`).

Apart from :mod:`.compare` so that the chat service can take a
:class:`Variant` without importing the comparison that drives it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Variant:
    """One way to answer: the chat's settings, with some of them replaced."""

    label: str
    persona: str | None = None  # a persona id: its system text, names and defaults
    model: str | None = None  # a model file (local engine)
    sampling: dict[str, Any] = field(default_factory=dict)  # over the chat's own values

    def meta(self) -> dict[str, Any]:
        """What the answer remembers of how it was asked (shown with it)."""
        out: dict[str, Any] = {"label": self.label}
        if self.persona:
            out["persona"] = self.persona
        if self.model:
            out["model"] = self.model
        if self.sampling:
            out["sampling"] = dict(self.sampling)
        return out
