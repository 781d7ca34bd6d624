"""The core: storage, chats, personas, prompts, sampling, config, the engine protocol.

No Textual, no llama.cpp: the UI and the CLI are thin layers over it.
"""
