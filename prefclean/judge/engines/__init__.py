"""Judge engines: the things that turn chat messages into text. Built-ins register like any other."""

from .base import ENGINES, Completion, Engine, EngineError, GenerationParams, create_engine, register_engine

__all__ = ["ENGINES", "Completion", "Engine", "EngineError", "GenerationParams", "create_engine", "register_engine"]
