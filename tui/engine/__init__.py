"""Inference engines: one owner per model, jobs in, events out."""
