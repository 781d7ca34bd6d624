"""The local llama.cpp engine: the parent-side client and the child process that hosts the model."""
