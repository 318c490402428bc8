"""A small project UDF: word counts, vectorized over Arrow (no per-row Python)."""

import pyarrow.compute as pc

from prefclean import udf


@udf(params=["VARCHAR"], returns="BIGINT")
def response_words(texts):
    """Whitespace-separated words in each response (NULL stays NULL)."""
    return pc.list_value_length(pc.utf8_split_whitespace(texts)).cast("int64")
