"""`sources:` in prefclean.yml, one class per source type (chosen by `type`, or inferred from `rows` or the
file extension), so a key one type does not read (`table` on a jsonl source) is an error naming the type.

Every class offers the same attributes to sources.py (`path`, `table`, `hf_name`, `split`, `rows`, `columns`,
`options`, `materialized`); what a type does not take is a fixed class attribute, not a key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import BeforeValidator, Field, PrivateAttr, TypeAdapter, field_validator

from .base import ConfigModel, article, as_tuple, config_error

SOURCE_TYPES = ("parquet", "jsonl", "csv", "duckdb", "huggingface", "inline")
# Sources that can be a view over their files instead of a copy; Parquet is one by default, since DuckDB
# reads it about as fast as its own tables (copying it only doubled the disk and the staging time).
SOURCE_VIEW_TYPES = ("parquet", "jsonl", "csv")
_EXTENSION_TYPES = {".parquet": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv"}


def _names(value: Any) -> Any:
    """`columns: {question: instruction}`; YAML may read a name as a number, which is still a name."""
    if isinstance(value, dict):
        return {str(k): str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v for k, v in value.items()}
    return {} if value is None else value


Columns = Annotated[dict[str, str], BeforeValidator(_names)]


class SourceConfig(ConfigModel):
    """What every source has. Its name is its key under `sources:` (not a field: a Hugging Face source's
    `name` key is the dataset's configuration)."""

    columns: Columns = Field({}, description="columns to rename as they are read: {old_name: new_name}")
    format: str | None = Field(None, description="the dataset's format (prefclean/formats/: orca, trl_standard, "
                                                 "sharegpt, ...); default: detected from its columns")
    _name: str = PrivateAttr("")

    @property
    def name(self) -> str:
        return self._name

    def named(self, name: str) -> "SourceConfig":
        self._name = name
        return self

    @classmethod
    def parse(cls, name: str, raw: dict) -> "SourceConfig":
        """A source as prefclean.yml would give it (`type` may be inferred), for code that makes one."""
        return TypeAdapter(source_union()).validate_python(raw).named(name)

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: str | None) -> str | None:
        if value is not None:
            from ..errors import PrefcleanError
            from ..formats import get_format

            try:
                get_format(value)
            except PrefcleanError as exc:
                raise config_error(f": {exc}") from None
        return value


class FileSource(SourceConfig):
    path: str = Field(description="a file path or glob, relative to the project (data/*.parquet)")
    options: dict[str, Any] = Field({}, description="options for DuckDB's reader (read_csv, read_json, read_parquet)")
    materialized: Literal["view", "table"] = Field(
        "table", description="table: copied into the warehouse; view: the files are read in place on every use")
    table: ClassVar[None] = None
    hf_name: ClassVar[None] = None
    split: ClassVar[None] = None
    rows: ClassVar[tuple] = ()


class ParquetSource(FileSource):
    type: Literal["parquet"] = "parquet"
    materialized: Literal["view", "table"] = Field(
        "view", description="view (default): the files are read in place; table: copied into the warehouse")


class JsonlSource(FileSource):
    type: Literal["jsonl"] = "jsonl"


class CsvSource(FileSource):
    type: Literal["csv"] = "csv"


class _CopiedSource(SourceConfig):
    """A source that is always copied into the warehouse (only files can be read in place)."""

    materialized: Literal["table"] = Field("table", description="always table: copied into the warehouse")

    @field_validator("materialized", mode="before")
    @classmethod
    def _no_view(cls, value: Any) -> Any:
        if value == "view":
            kind = cls.model_fields["type"].default
            raise config_error(f"cannot be 'view' for {article(kind)} source "
                               f"(only {', '.join(SOURCE_VIEW_TYPES)} files can be read in place)")
        return value


class DuckDBSource(_CopiedSource):
    type: Literal["duckdb"] = "duckdb"
    path: str = Field(description="the path of a DuckDB file, relative to the project")
    table: str = Field(description="a table name in that file (schema.table allowed)")
    hf_name: ClassVar[None] = None
    split: ClassVar[None] = None
    rows: ClassVar[tuple] = ()
    options: ClassVar[dict] = {}


class HuggingFaceSource(_CopiedSource):
    type: Literal["huggingface"] = "huggingface"
    path: str = Field(description="a Hub dataset id (Intel/orca_dpo_pairs) or a local dataset folder")
    hf_name: str | None = Field(None, alias="name", description="the dataset's configuration name")
    split: str | None = Field(None, description="the split, slicing allowed: train[:20] (default: train)")
    options: dict[str, Any] = Field({}, description="more arguments for datasets.load_dataset (data_files, revision...)")
    table: ClassVar[None] = None
    rows: ClassVar[tuple] = ()


class InlineSource(_CopiedSource):
    type: Literal["inline"] = "inline"
    rows: Annotated[tuple[dict[str, Any], ...], BeforeValidator(as_tuple)] = Field(
        (), description="the rows, each a mapping of column: value")
    path: ClassVar[None] = None
    table: ClassVar[None] = None
    hf_name: ClassVar[None] = None
    split: ClassVar[None] = None
    options: ClassVar[dict] = {}


SOURCE_CLASSES: dict[str, type[SourceConfig]] = {
    "parquet": ParquetSource, "jsonl": JsonlSource, "csv": CsvSource, "duckdb": DuckDBSource,
    "huggingface": HuggingFaceSource, "inline": InlineSource,
}


def _infer_type(raw: Any) -> Any:
    """`type` may be left out: `rows` means inline, otherwise the file extension says it."""
    if isinstance(raw, dict) and "type" not in raw:
        if "rows" in raw:
            return {**raw, "type": "inline"}
        if isinstance(raw.get("path"), str):
            kind = _EXTENSION_TYPES.get(Path(raw["path"].replace("*", "x")).suffix.lower())
            if kind:
                return {**raw, "type": kind}
    return raw


def source_union():
    classes = tuple(SOURCE_CLASSES.values())
    return Annotated[Union[classes], Field(discriminator="type"), BeforeValidator(_infer_type)]  # noqa: UP007
