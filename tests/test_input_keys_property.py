"""Property: a batch's input keys (keys.input_keys, Arrow kernels over the whole batch, what a build uses) are
each row's input key (keys.input_key, one row at a time, what `prefclean plan` uses), for any texts (unicode,
NUL, separators the key format uses, long texts), NULLs anywhere, any number of generations, conversations and
any slice of the batch, as Arrow builds it and as DuckDB hands it to the judge UDF."""

from __future__ import annotations

import duckdb
import pyarrow as pa
from hypothesis import HealthCheck, given, settings, strategies as st

from prefclean.judge.keys import input_key, input_keys
from prefclean.judge.tasks import CONVERSATION_MARK
from prefclean.judge.udf import _array

# texts made of the characters that matter: the format's own (digits, ':', 'n', '['), NUL, multi-byte ones
ALPHABET = st.sampled_from(list("0123456789:n[ ab\x00\n\"\\é€😀\u200b") + [CONVERSATION_MARK])
TEXT = st.one_of(st.text(ALPHABET, max_size=12), st.text(max_size=8),
                 st.builds(lambda c, n: c * n, ALPHABET, st.integers(1000, 5000)))
MAYBE = st.one_of(st.none(), TEXT)
GENERATIONS = st.one_of(st.none(), st.lists(MAYBE, max_size=4))
ROW = st.tuples(MAYBE, GENERATIONS, MAYBE)
ASPECT = st.sampled_from(["honesty", "overall-rating", "", "1:a"])


def _expected(identity, rows, aspect):
    return [input_key(identity, i, g, aspect, r) if i is not None and g and None not in g else None
            for i, g, r in rows]


def _encodable(rows):
    """Arrow strings are UTF-8: a lone surrogate cannot reach the judge from DuckDB."""
    texts = [t for i, g, r in rows for t in [i, r, *(g or [])] if t is not None]
    try:
        for t in texts:
            t.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(ROW, min_size=1, max_size=12).filter(_encodable), aspect=ASPECT,
       start=st.integers(0, 11), stop=st.integers(0, 12), identity=st.sampled_from(["id", "f" * 64]))
def test_a_batchs_input_keys_are_its_rows_input_keys_for_any_rows_and_slice(rows, aspect, start, stop, identity):
    instructions = pa.array([r[0] for r in rows], pa.string())
    generations = pa.array([r[1] for r in rows], pa.list_(pa.string()))
    references = pa.array([r[2] for r in rows], pa.string())
    part = slice(min(start, len(rows)), max(min(start, len(rows)), min(stop, len(rows))))
    keys = input_keys(identity, instructions[part], generations[part], aspect, references[part]).to_pylist()
    assert keys == _expected(identity, rows[part], aspect)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(ROW, min_size=1, max_size=40).filter(_encodable))
def test_the_input_keys_of_the_vectors_duckdb_hands_an_arrow_udf_are_their_rows_input_keys(rows):
    con = duckdb.connect()
    con.execute("set threads = 1")
    con.create_function("keys", lambda i, g, r: input_keys("id", *(_array(a) for a in (i, g)), "honesty", _array(r)),
                        ["VARCHAR", "VARCHAR[]", "VARCHAR"], "VARCHAR", type="arrow", null_handling="special")
    con.register("src", pa.table({"i": pa.array([r[0] for r in rows], pa.string()),
                                  "g": pa.array([r[1] for r in rows], pa.list_(pa.string())),
                                  "r": pa.array([r[2] for r in rows], pa.string()),
                                  "n": pa.array(range(len(rows)), pa.int64())}))
    # a list DuckDB computed (its own vectors, not the registered buffers), filtered so vectors have gaps
    keys = con.execute("select n, keys(i, list_transform(g, lambda x: x), r) from src where n % 3 <> 1 "
                       "order by n").fetchall()
    assert keys == [(n, k) for n, k in enumerate(_expected("id", rows, "honesty")) if n % 3 != 1]
