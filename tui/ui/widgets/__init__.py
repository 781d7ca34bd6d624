"""The widgets of the llama-tui screen."""
