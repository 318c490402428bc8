"""The hf-inference engine (huggingface_hub's AsyncInferenceClient) against the fake judge's base URL:
the same rows, cache and fault handling as the openai engine, and HF_TOKEN never written anywhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from judge_fixtures import build, judge_config, judge_note, judge_project, judged

pytest.importorskip("huggingface_hub")

SECRET = "hf_test_0123456789abcdefSECRET"


def hf_judge(server, **settings):
    return {"fake": {**judge_config(server), "engine": "hf-inference", **settings}}


def rows(n):
    return [{"id": i, "instruction": f"question {i}",
             "generations": [f"a{i} [[rate={1 + i % 5}]]", f"b{i} [[rate:fake-judge=4]] [[rate=1]]"]} for i in range(n)]


def test_hf_inference_judges_rows_end_to_end(make_project, run_cli, fake_judge, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    root = judge_project(make_project, fake_judge, rows(6), judges=hf_judge(fake_judge))
    result, _ = build(run_cli, root)
    out = {r["id"]: r["j"] for r in judged(root)}
    assert {i: j["ratings"] for i, j in out.items()} == {i: [1 + i % 5, 4] for i in range(6)}
    assert all(j["error"] is None and j["prompt_tokens"] > 0 and j["rationales"][1] == "text 2 earns 4."
               for j in out.values())
    stats = fake_judge.stats()
    assert stats["requests"] == 6 and stats["models"] == {"fake-judge": 6}
    assert stats["authorization"] == [f"Bearer {SECRET}"]
    assert "hf-inference fake-judge" in result.output and SECRET not in result.output
    for path in Path(root).rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path

    fake_judge.reset()
    build(run_cli, root)
    assert fake_judge.stats()["requests"] == 0


def test_hf_inference_retries_and_marks_failures_per_row(make_project, run_cli, fake_judge, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    fake_judge.control(fail_first_n=1, fail_status=502, rate_limit_first_n=2, retry_after=0.2,
                       fail_if_contains="question 3\n")
    root = judge_project(make_project, fake_judge, rows(5), judges=hf_judge(fake_judge, max_retries=3, concurrency=2))
    result, _ = build(run_cli, root)
    out = {r["id"]: r["j"] for r in judged(root)}
    assert out[3]["ratings"] is None and "error 502" in out[3]["error"]
    assert all(out[i]["ratings"] == [1 + i % 5, 4] for i in (0, 1, 2, 4))
    note = judge_note(result.output)
    assert (note["judged"], note["failed"]) == (4, 1) and note["429s"] >= 1
    assert SECRET not in result.output and SECRET not in out[3]["error"]
