"""smvl: splice a small vision tower onto a text LLM, train, chat, serve and evaluate it."""

__version__ = "0.1.0"
