"""Judgment-cache keys from a row's inputs (keys.py) and the in-memory key index (keyindex.py): a cached row is
answered without rendering its prompt, yet anything that changes the prompt changes the key; the index answers
from a cache of any age, and a row whose rowid moved is still found."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from judge_fixtures import build, build_api, judge_note, judge_project, judged

from prefclean.judge import cache as cache_module
from prefclean.judge import tasks as tasks_module
from prefclean.judge.cache import JudgmentCache
from prefclean.judge.keyindex import KeyIndex
from prefclean.judge.keys import (input_key, input_keys, inputs_identity, key_hash_sql, key_hashes, key_hashes_of,
                                  request_key)
from prefclean.judge.record import Judgment
from prefclean.judge.tasks import TEMPLATES_DIR, UltraFeedback, make_task

ROWS = [{"id": i, "instruction": f"q{i}", "generations": [f"a [[rate=4]] {i}", f"b [[rate=2]] {i}"]}
        for i in range(6)]


def judgment(key: str, **changes) -> Judgment:
    return Judgment(**{"key": key, "judge": "j", "engine": "openai", "model": "m", "task": "ultrafeedback",
                       "aspect": "honesty", "ratings": [4, 2], "rationales": ["good", "weak"], "winner": 1,
                       "raw": "Rating: 4", "prompt_tokens": 10, "completion_tokens": 5, "latency_ms": 50.5, **changes})


def test_the_input_key_changes_with_every_field_of_the_row():
    base = ("id", "question", ["a", "b"], "honesty", None)
    keys = {input_key(*base),
            input_key("id2", *base[1:]),
            input_key(base[0], "question?", *base[2:]),
            input_key(base[0], base[1], ["a", "c"], *base[3:]),
            input_key(base[0], base[1], ["b", "a"], *base[3:]),
            input_key(*base[:3], "truthfulness", None),
            input_key(*base[:4], "a reference")}
    assert len(keys) == 7


def test_a_batchs_input_keys_are_its_rows_input_keys_and_null_where_a_row_cannot_be_judged():
    rows = [("q", ["a", "b"], None), ("é€😀 \x00", ["1:2", ""], "ref"), (None, ["a"], None), ("q", [], None),
            ("q", None, None), ("q", ["a", None], None), ("", [""], ""), ("x" * 5000, ["y:"] * 7, "n"),
            ("1:a", ["b"], None), ("1", [":ab"], None)]  # field boundaries in other places: other keys
    instructions = pa.array([r[0] for r in rows], pa.string())
    generations = pa.array([r[1] for r in rows], pa.list_(pa.string()))
    references = pa.array([r[2] for r in rows], pa.string())
    for part in (slice(0, None), slice(1, 8), slice(5, None)):  # slices: arrays with an offset
        keys = input_keys("id", instructions[part], generations[part], "honesty", references[part]).to_pylist()
        assert keys == [input_key("id", i, g, "honesty", r) if i is not None and g and None not in g else None
                        for i, g, r in rows[part]]
    keys = [k for k in input_keys("id", instructions, generations, "honesty", references).to_pylist() if k]
    assert len(set(keys)) == len(keys) == 6
    assert key_hashes_of(pa.array(keys, pa.string())).tolist() == key_hashes(keys).tolist()


TEXTS = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12) | st.sampled_from(['"', "\\", "\n\t\r", "\x7f\x00\x1f", "é€😀"])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.none() | TEXTS, st.none() | st.lists(st.none() | TEXTS, max_size=3), st.none() | TEXTS),
                min_size=1, max_size=8), TEXTS)
def test_a_batchs_input_keys_are_what_input_key_gives_each_row_whatever_the_text(rows, aspect):
    keys = input_keys("id", pa.array([r[0] for r in rows], pa.string()),
                      pa.array([r[1] for r in rows], pa.list_(pa.string())), aspect,
                      pa.array([r[2] for r in rows], pa.string())).to_pylist()
    assert keys == [input_key("id", i, g, aspect, r) if i is not None and g and None not in g else None
                    for i, g, r in rows]


def test_the_inputs_identity_follows_the_templates_and_their_includes(tmp_path):
    (tmp_path / "judge_templates").mkdir()
    built_in = inputs_identity("judge", make_task("ultrafeedback", tmp_path))
    assert built_in is not None and built_in != inputs_identity("other judge", make_task("ultrafeedback", tmp_path))
    assert inputs_identity("judge", make_task("ultrafeedback", tmp_path, compact=True)) != built_in
    # an included template the project overrides changes it
    (tmp_path / "judge_templates" / "_conversation.jinja").write_text(
        (TEMPLATES_DIR / "_conversation.jinja").read_text(encoding="utf-8") + "\n", encoding="utf-8")
    with_include = inputs_identity("judge", make_task("ultrafeedback", tmp_path))
    assert with_include != built_in
    # a template the project's own template includes, found only by following it
    own = (TEMPLATES_DIR / "ultrafeedback.jinja").read_text(encoding="utf-8") + '{% include "_extra.jinja" %}'
    (tmp_path / "judge_templates" / "ultrafeedback.jinja").write_text(own, encoding="utf-8")
    (tmp_path / "judge_templates" / "_extra.jinja").write_text("one", encoding="utf-8")
    first = inputs_identity("judge", make_task("ultrafeedback", tmp_path))
    (tmp_path / "judge_templates" / "_extra.jinja").write_text("two", encoding="utf-8")
    assert inputs_identity("judge", make_task("ultrafeedback", tmp_path)) not in (first, with_include, built_in)


def test_a_template_named_at_render_time_keys_on_the_rendered_prompt(tmp_path):
    (tmp_path / "judge_templates").mkdir()
    (tmp_path / "judge_templates" / "ultrafeedback.jinja").write_text(
        '{% include aspect ~ ".jinja" %}{{ instruction }}', encoding="utf-8")
    assert inputs_identity("judge", make_task("ultrafeedback", tmp_path)) is None


def test_a_subclass_that_does_not_declare_it_keys_on_the_rendered_prompt(tmp_path):
    class Reads(UltraFeedback):  # overrides prompt: it may read more than the row
        name = "reads"

        def prompt(self, *args, **kwargs):
            return super().prompt(*args, **kwargs)

    task = Reads(make_task("ultrafeedback", tmp_path).env)
    assert inputs_identity("judge", task) is None
    assert tasks_module.Task.keys_from_inputs is False


def test_key_hashes_agree_with_duckdb_for_hex_and_other_keys():
    keys = [request_key("x", [{"role": "user", "content": str(i)}]) for i in range(50)] + \
           ["k1", "a key with spaces 0123456789abcdef", "0123456789abcdeZ", "é" * 20]
    con = duckdb.connect()
    sql = con.execute(f"select {key_hash_sql('k')} from unnest(?::varchar[]) t(k)", [keys]).fetchall()
    assert [int(h) for h in key_hashes(keys)] == [r[0] for r in sql]
    assert [int(h) for h in key_hashes(keys[:50])] == [r[0] for r in sql[:50]]  # the vectorized path


def test_the_key_index_finds_every_hash_and_nothing_else():
    rng = np.random.default_rng(1)
    hashes = rng.integers(0, 2**63, 1000, dtype=np.int64).astype(np.uint64)
    index = KeyIndex(hashes[:800], np.arange(800))
    for i in range(800, 1000, 50):  # the delta, several adds
        index.add(hashes[i:i + 50], np.arange(i, i + 50))
    probe = np.concatenate([hashes[::7], rng.integers(2**63, 2**64 - 1, 30, dtype=np.uint64)])
    positions, rowids = index.candidates(probe)
    assert sorted(positions.tolist()) == list(range(len(hashes[::7])))
    assert all(hashes[r] == probe[p] for p, r in zip(positions, rowids))
    index.add(hashes[:1], np.array([5000]))  # a second row for one hash: both are candidates
    assert sorted(index.candidates(hashes[:1])[1].tolist()) == [0, 5000]


@pytest.mark.parametrize("scattered", [False, True])
def test_a_lookup_answers_near_and_scattered_hits_and_sends_misses_nowhere(tmp_path, monkeypatch, scattered):
    if scattered:  # every hit its own run: fetched by key, through DuckDB's index
        monkeypatch.setattr(cache_module, "RUN_GAP", 0)
    cache = JudgmentCache(tmp_path / "judgments.duckdb")
    keys = [request_key("j", [{"content": str(i)}]) for i in range(300)]
    cache.store_later([judgment(k, raw=f"answer {i}") for i, k in enumerate(keys[:200])], [])
    probe = keys[::3] + ["k-missing", keys[5]]
    found = cache.lookup(probe)
    assert sorted(found) == sorted(set(k for k in probe if k in keys[:200]))
    assert all(found[k]["raw"] == f"answer {keys.index(k)}" for k in found)
    cache.store_later([judgment(k, raw="later") for k in keys[200:]], [])  # stored after the index was read
    assert {k: r["raw"] for k, r in cache.lookup(keys[250:260]).items()} == {k: "later" for k in keys[250:260]}
    cache.close()


def test_a_row_whose_rowid_moved_is_found_by_its_key(tmp_path):
    cache = JudgmentCache(tmp_path / "judgments.duckdb")
    keys = [request_key("j", [{"content": str(i)}]) for i in range(100)]
    cache.store_later([judgment(k, raw=str(i)) for i, k in enumerate(keys)], [])
    cache.close()
    cache = JudgmentCache(tmp_path / "judgments.duckdb")  # a later build's: its first look-up reads the index
    assert len(cache.lookup(keys)) == 100
    index = cache._index
    index._rowids = (index._rowids + 37) % 100  # every rowid now points at another row
    found = cache.lookup(keys[:10])
    assert {k: r["raw"] for k, r in found.items()} == {k: str(i) for i, k in enumerate(keys[:10])}
    assert cache._index is None  # read again next time
    assert len(cache.lookup(keys)) == 100
    cache.close()


def test_a_rebuild_from_the_cache_renders_no_prompt_and_answers_every_row(make_project, run_cli, fake_judge,
                                                                         monkeypatch):
    root = judge_project(make_project, fake_judge, ROWS)
    build(run_cli, root)
    assert fake_judge.stats()["requests"] == 6
    fake_judge.reset()
    rendered = []
    original = tasks_module.Task.render
    monkeypatch.setattr(tasks_module.Task, "render", lambda self, name, *a, **k: rendered.append(name) or
                        original(self, name, *a, **k))
    result = build_api(root, full_refresh=True)
    assert fake_judge.stats()["requests"] == 0 and result.judging.cached == 6
    assert [name for name in rendered if name != "ultrafeedback_system.jinja"] == []
    assert all(r["j"]["cached"] and r["j"]["ratings"] == [4, 2] for r in judged(root))


def test_a_template_edit_that_leaves_the_prompt_as_it_was_is_answered_from_the_cache(make_project, run_cli,
                                                                                     fake_judge):
    root = judge_project(make_project, fake_judge, ROWS)
    template = root / "judge_templates" / "ultrafeedback.jinja"
    template.parent.mkdir()
    source = (TEMPLATES_DIR / "ultrafeedback.jinja").read_text(encoding="utf-8")
    template.write_text(source, encoding="utf-8")
    build(run_cli, root)
    template.write_text("{# a comment: the key changes, the prompt does not #}" + source, encoding="utf-8")
    fake_judge.reset()
    result, _ = build(run_cli, root, "--full-refresh")
    assert fake_judge.stats()["requests"] == 0 and judge_note(result.output)["cached"] == 6
    template.write_text(source + "\nBe strict.\n", encoding="utf-8")
    fake_judge.reset()
    build(run_cli, root, "--full-refresh")
    assert fake_judge.stats()["requests"] == 6  # the prompt changed: judged again


def test_a_cache_keyed_by_prompts_answers_a_build_keyed_by_inputs(make_project, run_cli, fake_judge):
    """A cache from before input keys: every key is its prompt's. The build finds them once it renders the
    prompt, and stores them under the input key, so the next build renders nothing."""
    root = judge_project(make_project, fake_judge, ROWS)
    build(run_cli, root)
    path = root / "target" / "judgments.duckdb"
    con = duckdb.connect(str(path))
    con.execute("update judgments set key = prompt_key, key_hash = prompt_hash")  # as an older prefclean left it
    con.execute("update judgments set prompt_key = null, prompt_hash = null")
    con.close()
    fake_judge.reset()
    result, _ = build(run_cli, root, "--full-refresh")
    assert fake_judge.stats()["requests"] == 0 and judge_note(result.output)["cached"] == 6
    con = duckdb.connect(str(path), read_only=True)
    assert con.execute("select count(*), count(prompt_key) from judgments").fetchone() == (12, 6)
    con.close()


def test_one_batch_of_cached_new_repeated_and_unjudgeable_rows_accounts_for_every_row(make_project, run_cli,
                                                                                     fake_judge):
    root = judge_project(make_project, fake_judge, ROWS, dirname="p")
    build(run_cli, root)
    fake_judge.reset()
    new = [{"id": 10 + i, "instruction": "new", "generations": ["n [[rate=5]]", "m [[rate=1]]"]} for i in range(3)]
    bad = [{"id": 20, "instruction": None, "generations": ["a", "b"]}, {"id": 21, "instruction": "q", "generations": []}]
    judge_project(make_project, fake_judge, ROWS + new + bad, dirname="p")
    result = build_api(root, full_refresh=True)
    assert fake_judge.stats()["requests"] == 1  # the three new rows are one prompt
    counts = result.judging
    assert (counts.rows, counts.cached, counts.judged, counts.failed, counts.deduplicated) == (11, 6, 3, 2, 2)
    out = {r["id"]: r["j"] for r in judged(root)}
    assert all(out[r["id"]]["cached"] and out[r["id"]]["ratings"] == [4, 2] for r in ROWS)
    assert all(out[10 + i]["ratings"] == [5, 1] and not out[10 + i]["cached"] for i in range(3))
    assert [out[i]["error"] for i in (20, 21)] == ["missing instruction or generation"] * 2
    fake_judge.reset()
    result = build_api(root, full_refresh=True)  # now the cache answers every row it can: no request
    assert fake_judge.stats()["requests"] == 0 and (result.judging.cached, result.judging.failed) == (9, 2)


def test_a_cache_whose_input_keys_another_format_wrote_answers_by_prompt_once(make_project, run_cli, fake_judge):
    """A change to how input keys are made (the task's code is part of them) finds every judgment by its prompt key
    once, stores it under the new key, and sends nothing."""
    root = judge_project(make_project, fake_judge, ROWS)
    build(run_cli, root)
    path = root / "target" / "judgments.duckdb"
    con = duckdb.connect(str(path))
    con.execute("update judgments set key = md5(key) || md5(key)")  # other keys, same prompts
    con.execute(f"update judgments set key_hash = {key_hash_sql('key')}")
    con.close()
    fake_judge.reset()
    assert build_api(root, full_refresh=True).judging.cached == 6 and fake_judge.stats()["requests"] == 0
    rendered = []
    original = tasks_module.Task.render
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tasks_module.Task, "render", lambda self, name, *a, **k: rendered.append(name) or
                      original(self, name, *a, **k))
        assert build_api(root, full_refresh=True).judging.cached == 6
    assert [name for name in rendered if name != "ultrafeedback_system.jinja"] == []  # stored under the new keys


def test_rows_duckdb_hands_as_large_strings_are_keyed_and_judged_as_any_other(make_project, run_cli, fake_judge):
    """A project that sets DuckDB's arrow_large_buffer_size (on-run-start) makes the judge UDF's inputs large_string
    and large_list: the batch's Arrow keying mixed them with plain strings and every batch failed."""
    root = judge_project(make_project, fake_judge, ROWS)
    config = root / "prefclean.yml"
    config.write_text(config.read_text(encoding="utf-8") + "on-run-start: \"set arrow_large_buffer_size = true\"\n",
                      encoding="utf-8")
    build(run_cli, root)
    assert fake_judge.stats()["requests"] == 6
    assert all(r["j"]["ratings"] == [4, 2] for r in judged(root))
    fake_judge.reset()
    assert build_api(root, full_refresh=True).judging.cached == 6 and fake_judge.stats()["requests"] == 0
