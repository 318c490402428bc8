"""The Ray executor against the local one: same project, same fake judge, same answers, same requests.

A local Ray runtime (2 CPUs) is started for the comparison; the executor finds it and uses it. Each
executor gets its own fresh judge server, so the server's request counts (and its injected 429s and
unparseable answers) are comparable one to one.
"""

from __future__ import annotations

import socket

import pytest

from judge_fixtures import build, judge_config, judge_note, judge_project, judged
from servers.fake_judge import FakeJudge

GARBLED = "[[garble]]"  # the server answers prompts holding this with text that never parses
# what a judgment says; `attempts` and `latency_ms` depend on which request happened to meet a 429 first
COMPARED = ("ratings", "rationales", "winner", "judge", "model", "raw", "error", "prompt_tokens",
            "completion_tokens", "cached", "key")


def rows(n: int = 40) -> list[dict]:
    """Rows 0, 10, 20, 30 share one text (judged once); three texts get answers that never parse."""
    out = []
    for i in range(n):
        base = i if i % 10 else 0
        gens = [f"answer {base}.{k} [[rate={1 + (base + 2 * k) % 5}]]" for k in range(2 + base % 2)]
        if base % 13 == 5:
            gens[0] += " " + GARBLED
        out.append({"id": i, "instruction": f"question {base}", "generations": gens})
    return out


def comparable(root) -> list[tuple]:
    return [(r["id"], *(r["j"][k] for k in COMPARED)) for r in judged(root)]


@pytest.fixture
def ray_runtime():
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'prefclean[ray]')")
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 1024 * 1024, log_to_driver=False)
    yield ray
    ray.shutdown()


def build_twice(make_project, run_cli, dirname: str, *args: str) -> list[dict]:
    """Build cold, then again (cache): per build, what the server saw, what the build said, the table."""
    with FakeJudge() as server:
        server.control(latency_ms=20, rate_limit_first_n=3, retry_after=0.1, garbage_if_contains=GARBLED)
        judge = judge_config(server, concurrency=8, max_retries=2, parse_retries=1)
        root = judge_project(make_project, server, rows(), judges={"fake": judge}, dirname=dirname)
        # Ray settings in prefclean.yml; without `type: ray` they apply only when a run asks for --executor ray
        with open(root / "prefclean.yml", "a", encoding="utf-8") as f:
            f.write("executor: {num_actors: 3, batch_size: 4, batches_per_actor: 2, actor_options: {num_cpus: 0.5}}\n")
        runs = []
        for _ in range(2):
            before = server.stats()["requests"]
            result, _ = build(run_cli, root, *args)
            stats = server.stats()
            runs.append({"requests": stats["requests"] - before, "max_in_flight": stats["max_in_flight"],
                         "on_ray": "on Ray at a local runtime: 3 actors, batches of 4" in result.output,
                         "counts": judge_note(result.output), "table": comparable(root),
                         # per distinct prompt: rows sharing a prompt share its attempts
                         "attempts": sum({r["j"]["key"]: r["j"]["attempts"] for r in judged(root)}.values())})
        return runs


@pytest.mark.ray
def test_ray_executor_matches_local_results_requests_and_cache(make_project, run_cli, ray_runtime):
    local = build_twice(make_project, run_cli, "local")
    on_ray = build_twice(make_project, run_cli, "ray", "--executor", "ray")

    assert not local[0]["on_ray"] and on_ray[0]["on_ray"] and on_ray[1]["on_ray"]
    data = rows()
    garbled = sum(1 for r in data if GARBLED in r["generations"][0])
    distinct = len({r["instruction"] for r in data})
    assert garbled == 3 and distinct == 37
    # cold: every distinct prompt once, plus the 3 answers of 429, plus one re-ask per unparseable prompt
    assert local[0]["requests"] == distinct + 3 + garbled
    assert on_ray[0]["requests"] == local[0]["requests"]
    # rerun: what was judged comes from the cache; only the failed prompts are asked again (twice each)
    assert local[1]["requests"] == on_ray[1]["requests"] == 2 * garbled
    # what the build reports (judged, failed, cached, deduplicated, requests, retries, 429s) matches, so the
    # actors' counters reach the driver
    for cold_or_rerun in (0, 1):
        assert on_ray[cold_or_rerun]["counts"] == local[cold_or_rerun]["counts"]
        assert on_ray[cold_or_rerun]["attempts"] == local[cold_or_rerun]["attempts"]
    assert local[0]["counts"]["429s"] == 3 and local[0]["counts"]["deduplicated"] == 3
    assert local[1]["counts"]["cached"] == len(data) - garbled
    # the judge's concurrency is a budget for the whole pool of actors, not per actor
    assert on_ray[0]["max_in_flight"] <= 8

    for cold_or_rerun in (0, 1):
        assert on_ray[cold_or_rerun]["table"] == local[cold_or_rerun]["table"]
    errors = [r for r in local[0]["table"] if r[COMPARED.index("error") + 1] is not None]
    assert len(errors) == garbled
    assert all(r[1] and None not in r[1] for r in local[0]["table"] if r not in errors)


def test_bad_executor_setting_is_one_clear_line(make_project, run_cli):
    with FakeJudge() as server:
        root = judge_project(make_project, server, rows(2))
        config = (root / "prefclean.yml").read_text() + "executor: {type: ray, num_actors: 0}\n"
        (root / "prefclean.yml").write_text(config)
        result, _ = build(run_cli, root, ok=False)
        assert "`executor.num_actors` must be a whole number >= 1, got 0" in result.output
        assert server.stats()["requests"] == 0


@pytest.mark.ray
def test_unreachable_ray_address_fails_fast_with_what_to_do(make_project, run_cli):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'prefclean[ray]')")
    with socket.socket() as probe:  # a port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with FakeJudge() as server:
        root = judge_project(make_project, server, rows(2))
        with open(root / "prefclean.yml", "a", encoding="utf-8") as f:
            f.write(f"executor: {{type: ray, address: '127.0.0.1:{port}'}}\n")
        result, seconds = build(run_cli, root, ok=False)
        assert f"executor ray: nothing answers at 127.0.0.1:{port}" in result.output
        assert "ray start --head" in result.output
        assert seconds < 30 and server.stats()["requests"] == 0
