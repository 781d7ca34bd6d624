"""Persona import and export: other tools' formats to and from :class:`tui.core.personas.Persona`.

One module per format, as in Posting's ``importing/``:

- :mod:`~tui.formats.llamacpp`: llama.cpp prompt files (transcripts, ``[[AI_NAME]]``)
- :mod:`~tui.formats.modelfile`: Ollama Modelfiles (import and export)
- :mod:`~tui.formats.card`: Tavern/SillyTavern character cards V1-V3, JSON or PNG
- :mod:`~tui.formats.webui`: text-generation-webui character YAML (and old JSON)

:func:`import_persona` picks the format; :func:`export_persona` writes one.
"""

from tui.formats.common import ImportResult, PersonaImportError
from tui.formats.dispatch import (
    EXPORT_FORMATS,
    FORMATS,
    detect_format,
    export_persona,
    export_toml,
    import_persona,
)

__all__ = [
    "EXPORT_FORMATS",
    "FORMATS",
    "ImportResult",
    "PersonaImportError",
    "detect_format",
    "export_persona",
    "export_toml",
    "import_persona",
]
