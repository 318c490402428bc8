"""Prompt tokens as the judge will count them, for `prefclean plan`.

A llama.cpp judge's own GGUF vocabulary, loaded with `vocab_only` (no weights: ~0.5 s), and the GGUF's chat
template applied as llama-cpp-python applies it: the count the engine reports for the same request. A
judge with `tokenizer: path/to/tokenizer.json` counts its messages with the `tokenizers` package (plus the
chat template's markup, estimated). Any other judge: about four characters a token (`budget.estimate_tokens`).
`kind` says which: exact or estimated.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

from ..errors import JudgeError
from .budget import estimate_tokens

TEMPLATE_TOKENS_PER_MESSAGE = 4  # role markers around each message, in the usual chat templates


class Estimate:
    kind = "estimated"

    def count(self, messages: list[dict]) -> int:
        return estimate_tokens(messages)


class GgufVocabulary:
    """The GGUF's tokenizer and chat template, without its weights."""

    kind = "exact"

    def __init__(self, path: Path):
        from llama_cpp import Llama
        from llama_cpp import llama_chat_format

        # llama.cpp warns that a vocabulary has no training context (through Python's stderr): not news here
        with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
            self.llama = Llama(model_path=str(path), vocab_only=True, verbose=False)
        self.lock = threading.Lock()
        template = self.llama.metadata.get("tokenizer.chat_template")
        self.formatter = None
        if template and self.llama.chat_format == "chat_template.default":  # what create_chat_completion uses
            model = self.llama._model
            eos, bos = self.llama.token_eos(), self.llama.token_bos()
            self.formatter = llama_chat_format.Jinja2ChatFormatter(
                template=template, eos_token=model.token_get_text(eos) if eos != -1 else "",
                bos_token=model.token_get_text(bos) if bos != -1 else "", stop_token_ids=[eos])
        else:  # another built-in chat format: the text is counted exactly, its markup is not
            self.kind = "estimated"

    def count(self, messages: list[dict]) -> int:
        with self.lock:
            if self.formatter is None:
                text = "\n".join(str(m.get("content") or "") for m in messages)
                return len(self.llama.tokenize(text.encode(), add_bos=True, special=True)) + \
                    TEMPLATE_TOKENS_PER_MESSAGE * len(messages)
            result = self.formatter(messages=messages)
            return len(self.llama.tokenize(result.prompt.encode(), add_bos=not result.added_special, special=True))


class TokenizerJson:
    """A Hugging Face tokenizer.json: the messages' text counted exactly, the template's markup estimated."""

    kind = "estimated"

    def __init__(self, path: Path):
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise JudgeError(f"`tokenizer: {path}` needs the tokenizers package: pip install tokenizers") from None
        self.tokenizer = Tokenizer.from_file(str(path))

    def count(self, messages: list[dict]) -> int:
        return sum(len(self.tokenizer.encode(str(m.get("content") or ""), add_special_tokens=False).ids)
                   + TEMPLATE_TOKENS_PER_MESSAGE for m in messages)


def token_counter(config, root: Path | None = None):
    """The best counter at hand for this judge."""
    if config.tokenizer:
        path = Path(config.tokenizer).expanduser()
        if root is not None and not path.is_absolute():
            path = root / path
        if not path.is_file():
            raise JudgeError(f"judge '{config.name}': no tokenizer file {path} (`tokenizer:` in prefclean.yml)")
        return TokenizerJson(path)
    if config.engine == "llamacpp":
        from .engines.llamacpp import resolve_gguf

        try:
            path = resolve_gguf(config.name, config.model, config.options.get("filename"))
        except JudgeError:
            return Estimate()
        if path.is_file():
            try:
                return GgufVocabulary(path)
            except (ImportError, ValueError, RuntimeError, OSError):
                return Estimate()
    return Estimate()
