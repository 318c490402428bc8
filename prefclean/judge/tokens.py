"""Prompt tokens as the judge will count them, for `prefclean plan`.

A llama.cpp judge's own GGUF vocabulary, loaded with `vocab_only` (no weights: ~0.5 s), and the GGUF's chat
template applied as llama-cpp-python applies it: the count the engine reports for the same request. A judge
with `tokenizer: path/to/tokenizer.json` (any engine: the tokenizer of the model its server runs) is counted
with the `tokenizers` package: the chat template beside it (`chat_template.jinja`, or `chat_template` in
`tokenizer_config.json`, as Hugging Face repos ship them) rendered as servers render it and the result
tokenized, exact; without a template, the messages' text exactly and the template's markup estimated. Any
other judge, or a tokenizer.json without the package: about four characters a token (`budget.estimate_tokens`).
`kind` says which (exact or estimated), `why` why not exact.
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

    def __init__(self, why: str | None = None):
        self.why = why

    def count(self, messages: list[dict]) -> int:
        return estimate_tokens(messages)


class GgufVocabulary:
    """The GGUF's tokenizer and chat template, without its weights."""

    kind = "exact"
    why: str | None = None

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
            self.why = f"the GGUF's chat format {self.llama.chat_format} is not its own template: the markup is estimated"

    def count(self, messages: list[dict]) -> int:
        with self.lock:
            if self.formatter is None:
                text = "\n".join(str(m.get("content") or "") for m in messages)
                return len(self.llama.tokenize(text.encode(), add_bos=True, special=True)) + \
                    TEMPLATE_TOKENS_PER_MESSAGE * len(messages)
            result = self.formatter(messages=messages)
            return len(self.llama.tokenize(result.prompt.encode(), add_bos=not result.added_special, special=True))


class TokenizerJson:
    """A Hugging Face tokenizer.json, with the chat template its repo ships beside it when there is one."""

    def __init__(self, path: Path):
        from tokenizers import Tokenizer

        try:
            self.tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # the Rust side raises its own exception type
            raise JudgeError(f"{path} is not a tokenizer.json the tokenizers package can read: "
                             f"{' '.join(str(exc).split())[:200]}") from None
        self.template, specials = chat_template(path.parent)
        self.specials = specials
        self.kind = "exact" if self.template is not None else "estimated"
        self.why = None if self.template is not None else (
            f"no chat template beside {path.name} (chat_template.jinja or tokenizer_config.json): "
            "the chat markup is estimated")

    def count(self, messages: list[dict]) -> int:
        if self.template is None:
            return sum(len(self.tokenizer.encode(str(m.get("content") or ""), add_special_tokens=False).ids)
                       + TEMPLATE_TOKENS_PER_MESSAGE for m in messages)
        text = self.template.render(messages=messages, add_generation_prompt=True, **self.specials)
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)  # the template writes them


def chat_template(folder: Path):
    """The chat template beside a tokenizer.json, compiled as Hugging Face's servers and `apply_chat_template`
    compile it (a sandbox, trim_blocks and lstrip_blocks), and the special tokens it may name; (None, {})."""
    import json

    config: dict = {}
    config_path = folder / "tokenizer_config.json"
    if config_path.is_file():
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise JudgeError(f"{config_path} cannot be read: {exc}") from None
    source = None
    if (folder / "chat_template.jinja").is_file():
        source = (folder / "chat_template.jinja").read_text(encoding="utf-8")
    elif isinstance(config.get("chat_template"), str):
        source = config["chat_template"]
    elif isinstance(config.get("chat_template"), list):  # named templates: the default one
        named = {t.get("name"): t.get("template") for t in config["chat_template"] if isinstance(t, dict)}
        source = named.get("default")
    if not source:
        return None, {}
    from jinja2 import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals.update(raise_exception=raise_exception, strftime_now=lambda fmt: "")
    try:
        template = env.from_string(source)
    except TemplateError as exc:
        raise JudgeError(f"the chat template in {folder} does not compile: {exc}") from None

    def token(value):
        return value.get("content") if isinstance(value, dict) else value

    specials = {name: token(config.get(name)) or "" for name in ("bos_token", "eos_token", "unk_token", "pad_token")}
    return template, specials


def token_counter(config, root: Path | None = None):
    """The best counter at hand for this judge."""
    if config.tokenizer:
        path = Path(config.tokenizer).expanduser()
        if root is not None and not path.is_absolute():
            path = root / path
        if not path.is_file():
            raise JudgeError(f"judge '{config.name}': no tokenizer file {path} (`tokenizer:` in prefclean.yml)")
        try:
            return TokenizerJson(path)
        except ImportError:
            return Estimate(f"`tokenizer: {config.tokenizer}` needs the tokenizers package (pip install tokenizers)")
    if config.engine == "llamacpp":
        from .engines.llamacpp import resolve_gguf

        try:
            path = resolve_gguf(config.name, config.model, config.options.get("filename"))
        except JudgeError:
            return Estimate("the judge's GGUF is not at hand")
        if path.is_file():
            try:
                return GgufVocabulary(path)
            except (ImportError, ValueError, RuntimeError, OSError):
                return Estimate("the GGUF's vocabulary could not be loaded (llama-cpp-python)")
    return Estimate()
