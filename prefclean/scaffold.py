"""`prefclean init`: a new project that builds as it is -- the whole pipeline, from staging through the format
adapter to the cleaned file in the dataset's own format.

`prefclean init DIR` writes the example-style project (two inline orca pairs); `prefclean init DIR --from
FILE_OR_HUB_ID` reads the user's dataset in place, detects its format and names the export after it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import yaml

from .config import MODELINE, SCHEMA_FILE, schema_text
from .errors import PrefcleanError

TEMPLATE_DIR = Path(__file__).parent / "project_template"
_FILE_TYPES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet", ".csv": "csv"}
_EXPORT_SUFFIX = {"jsonl": ".jsonl", "parquet": ".parquet", "csv": ".csv", "huggingface": ".parquet"}

_VARS = """\
vars:
  source: {source}  # the source stg_rows reads (through its format adapter)
  shuffle_seed: 42
  judges: [default]            # the panel: names from `judges:` below (none named = the offline smoke-test judge)
  aspect: overall-rating       # overall-rating | helpfulness | honesty | instruction-following | truthfulness
  check_position_bias: true    # judge each pair a second time with the responses swapped (uncertain: close kept ones)
  bias_check_margin: 1         # with check_position_bias: uncertain, re-check kept pairs rated at most this far apart
  bias_check_direction: auto   # uncertain: only the winners in the position the judge tilts to (both: either)
  drop_position_biased: true   # drop pairs whose verdict changed when swapped
  min_margin: 1                # |chosen - rejected| below this is a tie -> drop
  poor_max: 2                  # both responses rated <= this -> drop
  min_agreement: 1.0           # share of the panel that must agree with the majority verdict
  allow_flip: false            # true: flip pairs the judges say are mislabelled instead of dropping them
"""

_SFT_VARS = """\
vars:
  source: {source}  # the source stg_rows reads (through its format adapter)
  judges: [default]            # the panel: names from `judges:` below (none named = the offline smoke-test judge)
  min_score: 4                 # keep responses whose mean score (1-5) is at least this
  rubric: >-                   # what the judge grades each response against (Prometheus absolute grading)
    Is the response correct, helpful and complete for the conversation's final request?
    Score 1: wrong, unhelpful or off task. Score 2: mostly wrong or missing most of the request.
    Score 3: partly right, with clear errors or gaps. Score 4: correct and helpful, with minor issues.
    Score 5: correct, complete and clear, exactly what was asked for.
"""

_COMPLETIONS_VARS = """\
vars:
  source: {source}  # the source stg_rows reads (through its format adapter)
  shuffle_seed: 42             # picks the rejected completion among the lower-rated ones
  judges: [default]            # the panel: names from `judges:` below (none named = the offline smoke-test judge)
  aspect: overall-rating       # overall-rating | helpfulness | honesty | instruction-following | truthfulness
  min_margin: 1                # the rejected completion is rated at least this much below the best
  poor_max: 2                  # the best completion rated <= this -> no pair
"""

_JUDGES = """\
# Judges: none named here, so judge() uses the offline smoke-test judge (SmolLM2-135M in llama.cpp; its ratings
# are NOT meaningful). Uncomment one block and set `vars: judges: [llama70b]` (or pass --judge) for real judging.
judges: {}
#  llama70b:                               # Hugging Face serverless / Inference Providers (HF_TOKEN)
#    engine: hf-inference
#    model: meta-llama/Meta-Llama-3.1-70B-Instruct
#  local-vllm:                             # any OpenAI-compatible server (vLLM, TGI, llama.cpp, Ollama)
#    engine: openai
#    base_url: http://127.0.0.1:8000/v1
#    model: meta-llama/Llama-3.1-70B-Instruct
"""

_EXAMPLE_ROWS = [
    {"system": "", "question": "What is 2 + 2?", "chosen": "2 + 2 = 4.", "rejected": "2 + 2 = 5."},
    {"system": "", "question": "Name the capital of France.", "chosen": "Paris.", "rejected": "Lyon."},
]

_UDF = '''\
"""Project UDFs: functions in this folder become DuckDB functions usable in models."""

import pyarrow.compute as pc

from prefclean import udf


@udf(params=["VARCHAR"], returns="BIGINT")
def word_count(texts):
    return pc.list_value_length(pc.utf8_split_whitespace(texts))
'''


@dataclass
class Scaffolded:
    root: Path
    format: str
    kind: str
    description: str
    columns: dict[str, str]
    source: dict
    cleaned_path: str


def _yaml_block(key: str, value) -> str:
    return yaml.safe_dump({key: value}, sort_keys=False, allow_unicode=True, width=120)


def _project_text(name: str, source_name: str, source: dict, exports: dict, kind: str = "dpo") -> str:
    variables = {"sft": _SFT_VARS, "completions": _COMPLETIONS_VARS}.get(kind, _VARS).format(source=source_name)
    return (f"{MODELINE}\n"
            f"# prefclean project: clean {source_name} with an LLM judge (prefclean.yml reference: README.md).\n"
            f"name: {name}\nwarehouse: target/prefclean.duckdb\n\n" + variables + "\n"
            + _yaml_block("sources", {source_name: source}) + "\n" + _JUDGES + "\n" + _yaml_block("exports", exports))


def _template_files(kind: str = "dpo") -> dict[str, str]:
    base = TEMPLATE_DIR / kind
    return {str(p.relative_to(base)): p.read_text(encoding="utf-8") for p in sorted(base.rglob("*")) if p.is_file()}


def _write(directory: Path, files: dict[str, str]) -> None:
    if (directory / "prefclean.yml").exists():
        raise PrefcleanError(f"{directory} already has a prefclean.yml")
    files = {**files, SCHEMA_FILE: schema_text()}  # what the first line of prefclean.yml points editors at
    existing = [rel for rel in files if (directory / rel).exists()]
    if existing:  # never overwrite a user's files
        raise PrefcleanError(f"{directory / existing[0]} already exists; init a new or empty folder")
    for rel, text in files.items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def _identifier(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_").lower()
    return name if name and not name[0].isdigit() else f"d_{name}"


def _exports(dataset: str, target: str, hub: bool = False, kind: str = "dpo") -> dict:
    audit = {"sft": "response_decisions", "completions": "completion_pairs"}.get(kind, "pair_decisions")
    cleaned = "cleaned_pairs" if kind == "completions" else "cleaned_rows"  # N completions in, pairs out
    exports = {
        "cleaned": {"model": cleaned, "target": target,
                    "path": f"target/exports/{dataset}_cleaned{_EXPORT_SUFFIX[target]}"},
        "audit": {"model": audit, "target": "parquet", "path": f"target/exports/{dataset}_audit.parquet"},
    }
    if hub:
        exports["hub"] = {"model": cleaned, "target": "hub", "repo_id": f"your-name/{dataset}_cleaned",
                          "private": True, "on_build": False}
    return exports


def scaffold(directory: Path, name: str | None = None) -> Path:
    """The example-style project: two inline orca pairs through the whole pipeline."""
    directory = directory.resolve()
    name = name or directory.name.replace("-", "_")
    source = {"type": "inline", "format": "orca", "rows": _EXAMPLE_ROWS}
    files = {"prefclean.yml": _project_text(name, "pairs", source, _exports("pairs", "parquet")),
             **_template_files(), "udfs/text.py": _UDF, ".gitignore": "target/\n"}
    _write(directory, files)
    return directory


def _starts_with_bracket(path: Path) -> bool:
    """Whether a .json file holds one JSON array (its first non-blank character is '[')."""
    with open(path, "rb") as f:
        head = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    return head[:1] == b"["


def source_for(spec: str) -> tuple[str, dict]:
    """(dataset name, source config) for a file path or a Hugging Face dataset id."""
    path = Path(spec).expanduser()
    if path.exists():
        if path.is_dir():
            return _identifier(path.name), {"type": "huggingface", "path": str(path.resolve()), "split": "train"}
        kind = _FILE_TYPES.get(path.suffix.lower())
        if kind is None:
            raise PrefcleanError(f"--from {spec}: cannot read a {path.suffix or 'suffix-less'} file "
                                 f"(one of {', '.join(sorted(_FILE_TYPES))}, or a Hugging Face dataset id)")
        source = {"type": kind, "path": str(path.resolve())}
        if path.suffix.lower() == ".json":  # a JSON array, or one object per line
            source["options"] = {"format": "array" if _starts_with_bracket(path) else "newline_delimited"}
        return _identifier(path.stem), source
    if re.fullmatch(r"[\w.-]+/[\w.-]+", spec):
        return _identifier(spec.split("/")[-1]), {"type": "huggingface", "path": spec, "split": "train"}
    raise PrefcleanError(f"--from {spec}: no such file, and not a Hugging Face dataset id (owner/name)")


def scaffold_from(directory: Path, spec: str, *, fmt: str | None = None, kind: str | None = None,
                  name: str | None = None) -> Scaffolded:
    """A project over the user's dataset, read in place: format detected (or named), export in its own kind."""
    from .formats import get_format
    from .formats.detect import KIND_FORMATS, detect
    from .formats.templates import source_shape
    from .project import SourceConfig

    directory = directory.resolve()
    if (directory / "prefclean.yml").exists():
        raise PrefcleanError(f"{directory} already has a prefclean.yml")
    dataset, source = source_for(spec)
    config = SourceConfig.parse(dataset, source)
    columns, rows = source_shape(SimpleNamespace(root=directory), config)
    chosen = get_format(fmt) if fmt else get_format(detect(columns, rows, kind, where=spec))
    if kind and chosen.kind not in KIND_FORMATS[kind]:
        raise PrefcleanError(f"format '{chosen.name}' holds {chosen.kind} data, not {kind}")
    source = {**source, "format": chosen.name}
    exports = _exports(dataset, source["type"] if source["type"] != "huggingface" else "parquet",
                       hub=source["type"] == "huggingface", kind=chosen.kind)
    if source.get("options", {}).get("format") and chosen.kind != "completions":  # a .json file: the same kind out
        cleaned = exports["cleaned"]
        cleaned["path"] = cleaned["path"][:-len(".jsonl")] + ".json"
        if source["options"]["format"] == "array":
            cleaned["array"] = True
    name = name or _identifier(directory.name)
    files = {"prefclean.yml": _project_text(name, dataset, source, exports, chosen.kind),
             **_template_files(chosen.kind), ".gitignore": "target/\n"}
    _write(directory, files)
    return Scaffolded(directory, chosen.name, chosen.kind, chosen.description, columns, source, exports["cleaned"]["path"])


__all__ = ["scaffold", "scaffold_from", "source_for", "Scaffolded"]
