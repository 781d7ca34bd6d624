"""The remote engine: an OpenAI-compatible server (llama.cpp, vLLM, Ollama…).

Same interface and events as the local engine, so the UI cannot tell them
apart. The work happens on one background thread, one command at a time, in
the order given (a message sent while the server is being checked waits for
the check, as it waits for the model to load locally).

How a persona reaches the server:

- chat mode (the default: a served model is assumed to have a chat
  template; a persona can force transcript mode): ``POST {base}/chat/completions``
  with the persona's system text, its examples and the history as messages;
- transcript mode: ``POST {base}/completions`` with the same transcript
  prompt as the local engine and the ``User:`` stop strings.

Both stream server-sent events. Stop strings are also applied here (with
:class:`tui.core.stops.StopScanner`), since not every server honours them.

Fitting the history into the window uses the same :class:`PromptBuilder` as
the local engine, with a token counter that asks the server when it can
(llama.cpp's ``/tokenize``, llama-cpp-python's ``/extras/tokenize``, vLLM's
``/tokenize``) and otherwise estimates (see :func:`estimate_tokens`). In chat
mode the server applies the model's own template, which we cannot see, so the
count uses a ChatML-like stand-in and :data:`CHAT_MARGIN` tokens are kept
free for the difference.

The modules: :mod:`.engine` (the engine and its worker thread),
:mod:`.discovery` (what the server is: /models, /props, Ollama's API,
tokenize), :mod:`.stream` (server-sent events, bounds, cancelling),
:mod:`.messages` (errors explained for people), :mod:`.settings` (the
sampling and reasoning fields each server kind knows, token estimates),
:mod:`.thinking` (a reasoning model's earlier thinking in the history, its
figures, the request that closes a thinking past its budget). The budget, the
reply filter and the finish reasons are the core's
(:mod:`tui.core.turn_policy`), shared with the local engine.

The API key is read from the endpoint's environment variable for every
request and scrubbed from every message this engine produces.
"""

from tui.engine.remote.discovery import DEFAULT_N_CTX, OLLAMA_DEFAULT_N_CTX
from tui.engine.remote.engine import RemoteEngine
from tui.engine.remote.messages import RemoteError
from tui.engine.remote.settings import (
    CHAT_MARGIN,
    estimate_tokens,
    sampling_fields,
    supported_settings,
)

__all__ = [
    "CHAT_MARGIN",
    "DEFAULT_N_CTX",
    "OLLAMA_DEFAULT_N_CTX",
    "RemoteEngine",
    "RemoteError",
    "estimate_tokens",
    "sampling_fields",
    "supported_settings",
]
