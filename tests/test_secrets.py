"""No secret reaches what prefclean stores or prints, even when a judge server echoes the Authorization header
back (in a 4xx body, in its answers or in the model name it reports) or a URL carries `user:password@`: every table of the warehouse and of
the judgment cache, every export, every artifact and the build's output are searched for it."""

from __future__ import annotations

import base64
from pathlib import Path

import duckdb
import yaml

from judge_fixtures import build, copy_example, judge_config

API_KEY = "sk-test-0123456789-ECHOED-KEY"
HF_SECRET = "hf_test_9876543210_ECHOED_TOKEN"
PASSWORD = "pw-0123456789-SECRET"
PAIRS = [{"system": "", "instruction": f"question {i}", "chosen": f"good answer {i} [[rate=5]]",
          "rejected": f"poor answer {i} [[rate=2]]"} for i in range(5)] + [
    {"system": "", "instruction": "question REFUSED", "chosen": "a [[rate=5]]", "rejected": "b [[rate=1]]"}]


def example(tmp_path, server, judges, panel):
    root = copy_example(tmp_path, server, rows=PAIRS, vars={"judges": panel, "check_position_bias": False})
    config = yaml.safe_load((root / "prefclean.yml").read_text(encoding="utf-8"))
    config["judges"] = judges
    config["exports"] = {"audit": {"model": "pair_decisions", "target": "parquet", "path": "target/exports/audit.parquet"},
                         "cleaned": {"model": "cleaned_pairs", "target": "jsonl", "path": "target/exports/cleaned.jsonl"}}
    (root / "prefclean.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return root


def places_holding(root: Path, secrets: list[str]) -> list[str]:
    """Every table (warehouse, judgment cache), Parquet export and other file under `root` (target/: what
    prefclean wrote) that holds one of the secrets. DuckDB and Parquet compress strings, so those are read with SQL, not grepped."""
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.suffix == ".duckdb":
            con = duckdb.connect(str(path), read_only=True)
            try:
                tables = con.execute("select schema_name, table_name from duckdb_tables()").fetchall()
                for schema, table in tables:
                    text = con.execute(f'select string_agg(to_json(t)::varchar, chr(10)) from "{schema}"."{table}" t'
                                       ).fetchone()[0] or ""
                    found += [f"{path.name}:{schema}.{table}" for s in secrets if s in text]
            finally:
                con.close()
        elif path.suffix == ".parquet":
            text = duckdb.sql(f"select string_agg(to_json(t)::varchar, chr(10)) from read_parquet('{path}') t"
                              ).fetchall()[0][0] or ""
            found += [str(path) for s in secrets if s in text]
        elif path.suffix not in (".wal",):
            data = path.read_bytes()
            found += [str(path) for s in secrets if s.encode() in data]
    return found


def test_an_echoing_judge_server_leaves_no_key_anywhere(tmp_path, run_cli, fake_judge, monkeypatch):
    monkeypatch.setenv("PREFCLEAN_TEST_JUDGE_KEY", API_KEY)
    monkeypatch.setenv("HF_TOKEN", HF_SECRET)
    fake_judge.control(echo_authorization=True, fail_if_contains="REFUSED", fail_status=400)
    judges = {"fake": judge_config(fake_judge, api_key_env="PREFCLEAN_TEST_JUDGE_KEY"),
              "hf": {**judge_config(fake_judge, model="hf-judge"), "engine": "hf-inference"}}
    root = example(tmp_path, fake_judge, judges, ["fake", "hf"])
    result, _ = build(run_cli, root)
    stats = fake_judge.stats()
    assert sorted(stats["authorization"]) == sorted([f"Bearer {API_KEY}", f"Bearer {HF_SECRET}"])  # they were sent
    assert stats["by_status"]["400"] >= 2  # each judge's refusal echoed its key
    errors = duckdb.connect(str(root / "target" / "prefclean.duckdb"), read_only=True).execute(
        "select judge, error from pair_ratings where error is not null order by judge").fetchall()
    assert [judge for judge, _ in errors] == ["fake", "hf"], errors
    assert errors[0][1].endswith("(you sent Authorization: Bearer [REDACTED])")  # the server's words, masked
    assert places_holding(root / "target", [API_KEY, HF_SECRET]) == []
    assert API_KEY not in result.output and HF_SECRET not in result.output

    listing = run_cli("judges", "--project-dir", root)
    assert API_KEY not in listing.output and HF_SECRET not in listing.output


def test_a_password_in_a_judge_url_is_never_shown_or_stored(tmp_path, run_cli, fake_judge, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    url = fake_judge.url.replace("http://", f"http://judge-user:{PASSWORD}@")
    fake_judge.control(echo_authorization=True)
    root = example(tmp_path, fake_judge, {"fake": judge_config(fake_judge, base_url=url)}, ["fake"])
    result, _ = build(run_cli, root)
    basic = base64.b64encode(f"judge-user:{PASSWORD}".encode()).decode()
    assert fake_judge.stats()["authorization"] == [f"Basic {basic}"]  # the URL's credentials were used
    assert "judge fake (openai fake-judge at http://[REDACTED]@127.0.0.1:" in result.output
    assert PASSWORD not in result.output and basic not in result.output
    assert places_holding(root / "target", [PASSWORD, basic]) == []
    run_results = (root / "target" / "run_results.json").read_text(encoding="utf-8")
    assert "http://[REDACTED]@127.0.0.1:" in run_results

    listing = run_cli("judges", "--project-dir", root)
    assert PASSWORD not in listing.output and "ok: http://[REDACTED]@127.0.0.1:" in listing.output


def test_a_password_in_the_url_and_a_key_together_are_one_line_never_an_internal_error(tmp_path, run_cli, fake_judge,
                                                                                       monkeypatch):
    # aiohttp refuses a request carrying both (one Authorization header); `prefclean judges` said "internal error"
    monkeypatch.setenv("PREFCLEAN_TEST_JUDGE_KEY", API_KEY)
    url = fake_judge.url.replace("http://", f"http://judge-user:{PASSWORD}@")
    root = example(tmp_path, fake_judge, {"fake": judge_config(fake_judge, base_url=url,
                                                               api_key_env="PREFCLEAN_TEST_JUDGE_KEY")}, ["fake"])
    for args in (("judges",), ("build",)):
        result = run_cli(*args, "--project-dir", root)
        assert result.exit_code == 1, result
        assert "base_url carries user:password@ and $PREFCLEAN_TEST_JUDGE_KEY is set" in result.output
        assert "internal error" not in result.output and PASSWORD not in result.output and API_KEY not in result.output
    assert fake_judge.stats()["requests"] == 0


def test_the_redactor_masks_known_values_credentials_in_urls_and_bearer_tokens():
    from prefclean.redact import Redactor

    r = Redactor()
    r.add("sk-known-secret-value")
    r.add("short")  # too short to mask as a bare value: only in a credential's shape
    r.add_url("https://alice:p%40ss-word-1@host.example/v1")
    basic = base64.b64encode(b"alice:p@ss-word-1").decode()
    assert r("key sk-known-secret-value echoed") == "key [REDACTED] echoed"
    assert r("cannot reach https://bob:hunter2@host.example/v1: refused") == \
        "cannot reach https://[REDACTED]@host.example/v1: refused"
    assert r(f"you sent Authorization: Basic {basic}") == "you sent Authorization: Basic [REDACTED]"
    assert r("the password was p@ss-word-1") == "the password was [REDACTED]"
    assert r("header: Bearer abcdefgh12345678") == "header: Bearer [REDACTED]"
    assert r("a short word stays") == "a short word stays" and r(None) is None
    assert r.known("Bearer tokens are explained in RFC 6750") == "Bearer tokens are explained in RFC 6750"
