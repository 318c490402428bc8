"""concurrency: auto (prefclean/judge/concurrency.py): the AIMD limit fed synthetic latencies and errors, the
gate that holds requests to it, the config key, and the judge's identity left alone by it."""

from __future__ import annotations

import asyncio

import pytest

from prefclean.judge.concurrency import AdaptiveGate, AdaptiveLimit


def serve(limit: AdaptiveLimit, capacity: int, *, base: float = 0.05, reject_above: int | None = None,
          rounds: int = 200) -> list[int]:
    """A closed loop against a modelled server: `limit` requests out, each answered in `base` seconds while
    in flight is within `capacity`, queued past it (latency grows with in flight / capacity), refused past
    `reject_above`. Returns the limit after each round."""
    seen = []
    for _ in range(rounds):
        n = limit.limit
        latency = base * max(1.0, n / capacity)
        for i in range(n):
            limit.sample(latency, n, dropped=reject_above is not None and i >= reject_above)
        seen.append(limit.limit)
    return seen


def test_the_limit_grows_from_low_to_the_servers_capacity_and_stays_near_it():
    limit = AdaptiveLimit(initial=4, maximum=256)
    seen = serve(limit, capacity=32)
    assert seen[0] <= 8
    settled = sorted(seen[50:])
    assert settled[len(settled) // 10] >= 30 and settled[-1] <= 32 * 1.5  # near capacity, not queueing much past it
    assert settled[0] >= 16  # the probes for the unloaded latency: half the limit, for two windows


def test_refusals_cut_the_limit_below_the_servers_refusal_point():
    limit = AdaptiveLimit(initial=4, maximum=256)
    seen = sorted(serve(limit, capacity=64, reject_above=40)[30:])
    assert seen[-1] <= 40 * 1.2 and seen[len(seen) // 2] >= 40 * 0.7  # a sawtooth under 40
    assert not limit.slow_start


def test_many_errors_in_one_window_cut_once():
    limit = AdaptiveLimit(initial=32, maximum=64)
    for _ in range(10):
        limit.sample(0.05, 32, dropped=True)
    assert limit.limit == int(32 * limit.backoff)


def test_a_server_without_a_limit_takes_the_ceiling():
    limit = AdaptiveLimit(initial=4, maximum=64)
    assert max(serve(limit, capacity=10_000, rounds=30)) == 64 and limit.value == 64


def test_an_unused_limit_does_not_grow():
    limit = AdaptiveLimit(initial=4, maximum=64)
    for _ in range(200):
        limit.sample(0.05, 1)  # one request at a time: the server's capacity is not being tried
    assert limit.value == 4


def test_the_limit_never_leaves_its_bounds():
    limit = AdaptiveLimit(initial=100, minimum=2, maximum=8)
    assert limit.limit == 8
    for _ in range(200):
        limit.sample(5.0, 8, dropped=True)
    assert limit.limit == 2


def test_a_slower_server_moves_the_baseline_up_after_a_while():
    """A server that became slower for everyone (another model loaded) is not taken for a queue for long:
    a probe at half the limit finds the new unloaded latency, and the limit goes back up."""
    limit = AdaptiveLimit(initial=16, maximum=16)
    serve(limit, capacity=1000, base=0.05, rounds=20)
    seen = serve(limit, capacity=1000, base=0.2, rounds=40)
    assert min(seen) >= 2 and seen[-10:].count(16) >= 8 and limit.baseline == pytest.approx(0.2)


def test_the_gate_holds_requests_to_the_limit_and_lets_waiters_in_as_places_free():
    async def main():
        gate = AdaptiveGate(AdaptiveLimit(initial=2, maximum=2))
        most = 0

        async def one():
            nonlocal most
            n = await gate.acquire()
            most = max(most, gate.in_flight)
            await asyncio.sleep(0.01)
            gate.release(0.01, n)

        await asyncio.wait_for(asyncio.gather(*(one() for _ in range(10))), 5)
        return most, gate.in_flight

    assert asyncio.run(main()) == (2, 0)


def test_concurrency_auto_is_the_default_for_remote_judges_and_checked(tmp_path):
    from prefclean.config.judges import JudgeConfig

    openai = JudgeConfig(engine="openai", base_url="http://x/v1")
    assert openai.concurrency == "auto" and openai.most_in_flight() == 64
    assert JudgeConfig(engine="openai", concurrency="auto", max_concurrency=16).most_in_flight() == 16
    assert JudgeConfig(engine="hf-inference", base_url="http://x").concurrency == "auto"
    assert JudgeConfig(engine="openai", concurrency=12).most_in_flight() == 12
    assert JudgeConfig(engine="llamacpp").most_in_flight() == 1


def test_concurrency_is_not_part_of_the_judges_identity(tmp_path):
    from prefclean.config.judges import JudgeConfig
    from prefclean.judge.identity import judge_fingerprint

    class Project:
        root = tmp_path

    fixed = JudgeConfig(engine="openai", base_url="http://x/v1", model="m", concurrency=8)
    auto = JudgeConfig(engine="openai", base_url="http://x/v1", model="m", concurrency="auto", max_concurrency=99)
    assert judge_fingerprint(Project, fixed, "ultrafeedback") == judge_fingerprint(Project, auto, "ultrafeedback")


def test_a_build_with_concurrency_auto_finds_a_servers_capacity_and_stays_under_its_refusals(
        make_project, run_cli, fake_judge):
    """The fake judge serves 16 at once (the rest queue) and refuses past 24 in flight: `auto` starts at 4,
    climbs past it, and sends few requests into refusals; every row is judged."""
    from judge_fixtures import build_api, judge_config, judge_project, judged

    fake_judge.control(latency_ms=50, max_concurrency=16, reject_above=24)
    n = 400
    rows = [{"id": i, "instruction": f"q {i}", "generations": [f"a {i} [[rate=4]]", f"b {i} [[rate=2]]"]}
            for i in range(n)]
    config = judge_config(fake_judge, concurrency="auto", max_retries=6)
    root = judge_project(make_project, fake_judge, rows, judges={"fake": config})
    result = build_api(root)
    stats = fake_judge.stats()
    assert result.judging.judged == n and len(judged(root)) == n
    assert 12 <= stats["max_in_flight"] <= 24 + 1, stats  # grew from 4; a refused one counts while it is answered
    assert stats["by_status"].get("429", 0) <= n * 0.1, stats["by_status"]


def test_ray_actors_each_find_their_own_limit_under_a_share_of_the_ceiling():
    from types import SimpleNamespace

    from prefclean.config.judges import JudgeConfig
    from prefclean.judge.ray_executor import RayExecutor

    executor = SimpleNamespace(options={"num_actors": 3, "split_concurrency": True})
    auto = JudgeConfig(engine="openai", base_url="http://x/v1", max_concurrency=10)
    configs = RayExecutor._actor_configs(executor, auto)
    assert [(c.concurrency, c.max_concurrency) for c in configs] == [("auto", 4), ("auto", 3), ("auto", 3)]
    fixed = JudgeConfig(engine="openai", base_url="http://x/v1", concurrency=8)
    assert [c.concurrency for c in RayExecutor._actor_configs(executor, fixed)] == [3, 3, 2]
