"""Judge engines: the things that turn chat messages into text. Built-ins are found like any other (plugins)."""

from .base import Completion, Engine, EngineError, GenerationParams, create_engine, engine_class

__all__ = ["Completion", "Engine", "EngineError", "GenerationParams", "create_engine", "engine_class"]
