"""`exports:` in prefclean.yml: one options class per target, chosen by `target`.

The exporters (prefclean/export/) read a target's own keys from `options`, as set in the file; value rules
that need the network or the data (a Hub branch name, a repo that exists) stay with them. A target added by a
plugin registers its class with `register_export_config`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BeforeValidator, Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from .base import ConfigModel, config_error


class ExportConfig(ConfigModel):
    """What every export has. Its name is its key under `exports:`."""

    name: SkipJsonSchema[str] = Field("", exclude=True)
    model: str = Field(description="the name of a model (its table is exported)")
    target: str
    on_build: bool = Field(True, description="false: only `prefclean export NAME` runs it (e.g. a push)")

    @property
    def options(self) -> dict[str, Any]:
        """The target's own keys that the file sets (the exporter supplies the defaults)."""
        common = ExportConfig.model_fields
        return {key: getattr(self, key) for key in self.model_fields_set if key not in common}


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


class _FileExport(ExportConfig):
    path: str | None = Field(None, description="the file to write, relative to the project "
                                                "(default: target/exports/NAME.<format>)")
    with_judgments: bool = Field(False, description="also write the rows' prefclean_judgment fields "
                                                    "(ratings, decision, reason) as columns")


class ParquetExport(_FileExport):
    target: Literal["parquet"]
    compression: Annotated[Literal["zstd", "snappy", "gzip", "brotli", "lz4", "lz4_raw", "uncompressed"],
                           BeforeValidator(_lower)] = Field("zstd", description="the Parquet compression codec")
    row_group_size: int | None = Field(None, ge=1, description="rows per row group (DuckDB's default: 122880)")


class JsonlExport(_FileExport):
    target: Literal["jsonl"]
    array: bool = Field(False, description="write one JSON array (as a .json dataset file holds it) instead of "
                                           "one object per line")


class CsvExport(_FileExport):
    target: Literal["csv"]


class HubExport(ExportConfig):
    target: Literal["hub"]
    repo_id: str | None = Field(None, description="the dataset repo: owner/name")
    private: bool = Field(False, description="create the repo private (an existing public repo is an error)")
    revision: str | None = Field(None, description="the branch to push to (default: main)")
    commit_message: str | None = Field(None, description="the commit message")
    config_name: str = Field("default", description="the dataset configuration the files are under")
    split: str = Field("train", description="the split name")
    rows_per_shard: int = Field(500_000, ge=1, description="rows per Parquet shard")
    pretty_name: str | None = Field(None, description="the dataset card's title")
    license: str | None = Field(None, description="the dataset card's license (apache-2.0, mit...)")
    audit_model: str | None = Field(None, description="the model whose decisions the card counts")
    task: str | None = Field(None, description="the judge task the card names (default: the `task` var)")


class ArgillaExport(ExportConfig):
    target: Literal["argilla"]
    dataset: str | None = Field(None, description="the Argilla dataset (default: the export's name)")
    workspace: str = Field("argilla", description="the Argilla workspace")
    api_url: str | None = Field(None, description="the server (default: $ARGILLA_API_URL)")
    api_key_env: str = Field("ARGILLA_API_KEY", description="the environment variable holding the API key")
    query: str | None = Field(None, description="SQL selecting the review columns; {rel} is the model")
    batch_size: int = Field(200, ge=1, description="records per request")
    review: Literal["all", "uncertain"] = Field(
        "all", description="all: every pair (records already there are updated); uncertain: the `budget` pairs "
                           "not yet sent where a reviewer adds the most (prefclean/export/review_queue.py)")
    budget: int | None = Field(None, ge=0, description="with review: uncertain, how many new uncertain pairs "
                                                       "one export sends")
    calibration: int = Field(0, ge=0, description="the size of the random calibration sample (stratified by "
                                                  "the judge's decision; its records show no judge suggestions)")
    calibration_seed: int = Field(0, description="the seed that draws the calibration sample (same seed, same sample)")
    min_submitted: int | None = Field(None, ge=1, description="Argilla's task distribution: the submitted reviews "
                                                              "a record needs to be complete (default: 1)")

    @model_validator(mode="after")
    def _budget_with_uncertain(self):
        problem = review_options_problem(self.review, self.budget)
        if problem:
            raise config_error(problem[1], key=problem[0])
        return self


def review_options_problem(review: str, budget: int | None) -> tuple[str, str] | None:
    """(key, what is wrong) when the review options do not go together, else None."""
    if review == "uncertain" and budget is None:
        return "budget", "is needed with review: uncertain (how many pairs to send)"
    if review != "uncertain" and budget is not None:
        return "budget", "counts uncertain pairs: set review: uncertain (review: all sends every pair)"
    return None


EXPORT_CLASSES: dict[str, type[ExportConfig]] = {
    "parquet": ParquetExport, "jsonl": JsonlExport, "csv": CsvExport, "hub": HubExport, "argilla": ArgillaExport,
}
FILE_TARGETS = ("parquet", "jsonl", "csv")


def register_export_config(cls: type[ExportConfig]) -> type[ExportConfig]:
    """Make a target's options class known to prefclean.yml (its `target` field is a Literal of its name)."""
    (target,) = cls.model_fields["target"].annotation.__args__
    EXPORT_CLASSES[target] = cls
    return cls


def export_union(classes: dict[str, type[ExportConfig]]):
    return Annotated[Union[tuple(classes.values())], Field(discriminator="target")]  # noqa: UP007

