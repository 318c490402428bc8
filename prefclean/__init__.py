"""prefclean: clean LLM preference datasets with an LLM judge, as a dbt-like DuckDB pipeline."""

__version__ = "0.1.0"

from .udf import udf  # noqa: E402,F401  (the decorator project udfs/ use)
