"""llama-tui: a terminal chat client for local large language models."""

__version__ = "0.1.0"
