"""The `hub` export against a fake Hub on 127.0.0.1 (tests/servers/fake_hub.py), pushed with the real
`huggingface_hub` client and read back with the real `datasets.load_dataset`.

Pushes whose output is checked for the token run `prefclean` as a subprocess (everything it prints is seen);
error cases run in-process. `load_dataset` always runs in a subprocess: `datasets` fixes its endpoint at import.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import duckdb
import pytest
import yaml

import prefclean
from servers.fake_hub import FakeHub

TOKEN = f"hf_test_{secrets.token_hex(12)}"
OTHER_TOKEN = f"hf_test_{secrets.token_hex(12)}"
COLUMNS = ("pair_id", "prompt", "chosen", "rejected", "ratings", "judge_model", "score")
ROWS = [dict(zip(COLUMNS, row)) for row in [
    (1, "What is 2+2?", "4", "5", [5, 1], "judge-a", 0.9),
    (2, "Capital of France?", "Lyon", "Paris", [1, 5], "judge-a", 0.2),  # mislabelled: flipped
    (3, "Say hi — politely", "Hello ✓", "hi", [4, 3], "judge-b", 0.5),
    (4, "Empty?", "yes", None, [2, 2], "judge-b", 0.1),  # a tie: dropped
    (5, "Name a prime", "7", "9", [5, 2], "judge-a", 0.8),
    (6, "Sort 3,1,2", "1,2,3", "3,2,1", [5, 1], "judge-b", 0.7),
    (7, "Square of 3", "9", "6", [4, 1], "judge-a", 0.6),
]]
AUDIT_MODEL = """{{ config(materialized='table', audit=true) }}
select *,
  case when ratings[1] - ratings[2] >= {{ var('min_margin') }} then 'keep'
       when ratings[2] - ratings[1] >= {{ var('min_margin') }} then 'flip' else 'drop' end as decision,
  case when ratings[1] = ratings[2] then 'tie' else 'margin' end as reason
from {{ source('pairs') }}
"""
CLEANED_MODEL = """{{ config(materialized='table') }}
select pair_id, prompt,
  case when decision = 'flip' then rejected else chosen end as chosen,
  case when decision = 'flip' then chosen else rejected end as rejected,
  ratings, judge_model, score, decision
from {{ ref('pair_decisions') }} where decision in ('keep', 'flip') order by pair_id
"""
LOADER = """
import json, sys
import datasets
datasets.disable_progress_bars()
out = []
for spec in json.loads(sys.argv[1]):
    ds = datasets.load_dataset(spec["repo"], spec.get("config"), split=spec["split"], revision=spec.get("revision"))
    out.append(ds.data.table.to_pylist())
print(json.dumps(out))
"""


def write_project(root: Path, exports: dict) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "models").mkdir(exist_ok=True)
    (root / "models" / "pair_decisions.sql").write_text(AUDIT_MODEL)
    (root / "models" / "cleaned.sql").write_text(CLEANED_MODEL)
    config = {"name": "hubproj", "vars": {"aspect": "honesty", "min_margin": 1, "poor_max": 2},
              "sources": {"pairs": {"type": "inline", "rows": ROWS}}, "exports": exports}
    (root / "prefclean.yml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    return root


def set_exports(root: Path, exports: dict) -> None:
    config = yaml.safe_load((root / "prefclean.yml").read_text())
    config["exports"] = exports
    (root / "prefclean.yml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))


def hf_env(hub_url: str, hf_home: Path, token: str | None = TOKEN) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE_"))}
    env.update(HF_ENDPOINT=hub_url, HF_HOME=str(hf_home), HF_HUB_DISABLE_TELEMETRY="1",
               HF_HUB_DISABLE_PROGRESS_BARS="1", PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    if token:
        env["HF_TOKEN"] = token
    return env


def prefclean_cli(args: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("prefclean")
    cmd = [str(script)] if script.exists() else [sys.executable, "-c", "from prefclean.cli import main; main()"]
    return subprocess.run(cmd + args, cwd=cwd, env=env, capture_output=True, text=True, timeout=180)


def load_back(env: dict, specs: list[dict]) -> list[list[dict]]:
    done = subprocess.run([sys.executable, "-c", LOADER, json.dumps(specs)], env=env, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def warehouse_rows(root: Path, sql: str) -> list[dict]:
    con = duckdb.connect(str(root / "target" / "prefclean.duckdb"), read_only=True)
    try:
        return con.sql(sql).to_arrow_table().to_pylist()
    finally:
        con.close()


def fetch_card(hub_url: str, repo_id: str, revision: str = "main", token: str = TOKEN) -> tuple[dict, str]:
    request = urllib.request.Request(f"{hub_url}/datasets/{repo_id}/resolve/{revision}/README.md",
                                     headers={"Authorization": f"Bearer {token}"})
    text = urllib.request.urlopen(request, timeout=10).read().decode()
    assert text.startswith("---\n")
    header, body = text[4:].split("\n---\n", 1)
    return yaml.safe_load(header), body


@pytest.fixture(scope="module")
def hub():
    with FakeHub(tokens={TOKEN: {"user": "alice", "orgs": ["team"]}, OTHER_TOKEN: {"user": "mallory"}},
                 repos=[{"repo_id": "bob/locked", "files": {"README.md": "---\nlicense: mit\n---\nbob's data\n"}},
                        {"repo_id": "alice/already-public", "files": {"README.md": "public"}}]) as server:
        yield server


def test_build_pushes_shards_and_card_that_datasets_reads_back(hub, tmp_path):
    root = write_project(tmp_path / "proj", {
        "to_hub": {"model": "cleaned", "target": "hub", "repo_id": "alice/orca-clean", "rows_per_shard": 2,
                   "license": "apache-2.0"},
        "audit_to_hub": {"model": "pair_decisions", "target": "hub", "repo_id": "alice/orca-clean",
                         "config_name": "audit", "split": "full"}})
    env = hf_env(hub.url, tmp_path / "hf")

    done = prefclean_cli(["build"], root, env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "export to_hub OK: 6 rows of cleaned -> hf://datasets/alice/orca-clean@main" in done.stdout
    assert "(3 shards + README.md" in done.stdout

    main = hub.state()["datasets/alice/orca-clean"]["branches"]["main"]
    assert sorted(p for p in main["files"] if p.endswith(".parquet")) == [
        "audit/full-00000-of-00001.parquet", "data/train-00000-of-00003.parquet",
        "data/train-00001-of-00003.parquet", "data/train-00002-of-00003.parquet"]

    cleaned = warehouse_rows(root, "select * from cleaned order by pair_id")
    audit = warehouse_rows(root, "select * from pair_decisions order by pair_id")
    assert [r["decision"] for r in audit] == ["keep", "flip", "keep", "drop", "keep", "keep", "keep"]
    got_cleaned, got_audit = load_back(env, [{"repo": "alice/orca-clean", "split": "train"},
                                             {"repo": "alice/orca-clean", "config": "audit", "split": "full"}])
    assert got_cleaned == cleaned
    assert sorted(got_audit, key=lambda r: r["pair_id"]) == audit

    meta, body = fetch_card(hub.url, "alice/orca-clean")
    assert {"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*"}]} in meta["configs"]
    assert {"config_name": "audit", "data_files": [{"split": "full", "path": "audit/full-*"}]} in meta["configs"]
    assert meta["license"] == "apache-2.0"  # set by the first push, kept by the second (which names none)
    facts = meta["prefclean"]
    assert facts["version"] == prefclean.__version__
    assert facts["decisions"] == {"keep": 5, "flip": 1, "drop": 1}
    assert facts["thresholds"] == {"min_margin": 1, "poor_max": 2}
    assert facts["aspect"] == "honesty" and facts["task"] == "ultrafeedback"
    assert facts["judge_models"] == ["judge-a", "judge-b"]
    assert facts["source_dataset"] == "pairs"
    # The last push (the audit config) describes its own table.
    assert [c["name"] for c in facts["schema"]] == list(audit[0])
    assert {c["name"]: c["type"] for c in facts["schema"]}["ratings"] == "BIGINT[]"
    assert facts["rows"] == {"default": {"train": 6}, "audit": {"full": 7}}
    assert "| keep | 5 |" in body and "`judge-a`, `judge-b`" in body

    # The token is nowhere: not printed, not in any file of the project, not in the card.
    assert TOKEN not in done.stdout + done.stderr
    leaked = [p for p in root.rglob("*") if p.is_file() and TOKEN.encode() in p.read_bytes()]
    assert leaked == []
    assert TOKEN not in body and TOKEN not in json.dumps(meta)


def test_repush_replaces_old_shards_and_keeps_other_configs(hub, tmp_path):
    exports = {"to_hub": {"model": "cleaned", "target": "hub", "repo_id": "team/repush", "rows_per_shard": 2,
                          "license": "apache-2.0"},
               "audit_to_hub": {"model": "pair_decisions", "target": "hub", "repo_id": "team/repush",
                                "config_name": "audit"}}
    root = write_project(tmp_path / "proj", exports)
    env = hf_env(hub.url, tmp_path / "hf")
    done = prefclean_cli(["build"], root, env)
    assert done.returncode == 0, done.stdout + done.stderr
    commits = hub.state()["datasets/team/repush"]["commits"]

    exports["to_hub"]["rows_per_shard"] = 100
    exports["to_hub"]["commit_message"] = "one shard now"
    set_exports(root, exports)
    done = prefclean_cli(["export", "to_hub"], root, env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "(1 shard + README.md" in done.stdout

    repo = hub.state()["datasets/team/repush"]
    assert repo["commits"] == commits + 1  # one push, one commit
    main = repo["branches"]["main"]
    assert main["title"] == "one shard now"
    assert sorted(p for p in main["files"] if p.endswith(".parquet")) == [
        "audit/train-00000-of-00001.parquet", "data/train-00000-of-00001.parquet"]
    meta, _ = fetch_card(hub.url, "team/repush")
    assert meta["license"] == "apache-2.0"
    assert sorted(c["config_name"] for c in meta["configs"]) == ["audit", "default"]
    got_cleaned, got_audit = load_back(env, [{"repo": "team/repush", "split": "train"},
                                             {"repo": "team/repush", "config": "audit", "split": "train"}])
    assert got_cleaned == warehouse_rows(root, "select * from cleaned order by pair_id")
    assert len(got_audit) == 7


def test_private_branch_config_and_commit_message(hub, tmp_path, run_cli, monkeypatch):
    root = write_project(tmp_path / "proj", {"v2": {
        "model": "cleaned", "target": "hub", "repo_id": "alice/private-clean", "private": True,
        "revision": "clean-v2", "config_name": "judged", "split": "test", "commit_message": "cleaned with judge v2"}})
    env = hf_env(hub.url, tmp_path / "hf")
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    result = run_cli("build", cwd=root)
    assert result.exit_code == 0, result.output
    assert "-> hf://datasets/alice/private-clean@clean-v2 config judged split test" in result.output

    repo = hub.state()["datasets/alice/private-clean"]
    assert repo["private"] is True
    branch = repo["branches"]["clean-v2"]
    assert branch["title"] == "cleaned with judge v2"
    assert "judged/test-00000-of-00001.parquet" in branch["files"] and "README.md" in branch["files"]
    assert not any(p.startswith("judged/") or p == "README.md" for p in repo["branches"]["main"]["files"])

    meta, _ = fetch_card(hub.url, "alice/private-clean", revision="clean-v2")
    assert meta["configs"] == [{"config_name": "judged", "data_files": [{"split": "test", "path": "judged/test-*"}]}]
    [rows] = load_back(env, [{"repo": "alice/private-clean", "config": "judged", "split": "test", "revision": "clean-v2"}])
    assert rows == warehouse_rows(root, "select * from cleaned order by pair_id")
    # Private: someone else's token does not even see it.
    request = urllib.request.Request(f"{hub.url}/api/datasets/alice/private-clean",
                                     headers={"Authorization": f"Bearer {OTHER_TOKEN}"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=10)
    assert err.value.code == 404


@pytest.fixture
def built(tmp_path, run_cli):
    """A built project with one export per failure case, exports not yet run."""
    root = write_project(tmp_path / "proj", {
        "ok": {"model": "cleaned", "target": "hub", "repo_id": "alice/ok-target"},
        "ok_test_split": {"model": "cleaned", "target": "hub", "repo_id": "alice/ok-target", "split": "test"},
        "locked": {"model": "cleaned", "target": "hub", "repo_id": "bob/locked"},
        "foreign_ns": {"model": "cleaned", "target": "hub", "repo_id": "carol/new-repo"},
        "bad_branch": {"model": "cleaned", "target": "hub", "repo_id": "alice/ok-target", "revision": "refs/weird"},
        "made_public": {"model": "cleaned", "target": "hub", "repo_id": "alice/already-public", "private": True},
        "no_repo": {"model": "cleaned", "target": "hub"},
        "bad_split": {"model": "cleaned", "target": "hub", "repo_id": "alice/ok-target", "split": "all"}})
    result = run_cli("build", "--no-exports", cwd=root)
    assert result.exit_code == 0, result.output
    return root


@pytest.mark.parametrize("export, token, expected", [
    ("locked", TOKEN, "export locked ERROR: the token may not write to datasets/bob/locked at {url} (403)"),
    ("foreign_ns", TOKEN, "export foreign_ns ERROR: the token may not write to datasets/carol/new-repo at {url} (403)"),
    ("ok", "hf_wrong_token", "export ok ERROR: the Hub rejected the token (401)"),
    ("bad_branch", TOKEN, "export bad_branch ERROR: export 'bad_branch': `revision` must be a branch name"),
    ("made_public", TOKEN, "export made_public ERROR: datasets/alice/already-public exists and is public but the export "
                           "says `private: true`"),
    ("no_repo", TOKEN, "export no_repo ERROR: export 'no_repo': set `repo_id: owner/name`"),
    ("bad_split", TOKEN, "export bad_split ERROR: export 'bad_split': `split` must be a word like train or test, not 'all'"),
])
def test_errors_are_one_line_and_push_nothing(hub, built, run_cli, monkeypatch, export, token, expected):
    before = hub.state()
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_TOKEN", token)
    result = run_cli("export", export, cwd=built)
    assert result.exit_code == 1, result.output
    [line] = [ln for ln in result.output.splitlines() if "ERROR" in ln]
    assert line.startswith(expected.format(url=hub.url)), line
    assert "Traceback" not in result.output and token not in result.output
    after = hub.state()
    assert {k: v["branches"] for k, v in after.items()} == {k: v["branches"] for k, v in before.items()}
    assert set(after) == set(before)  # no repo created either


def test_unreachable_endpoint(built, run_cli, monkeypatch):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    result = run_cli("export", "ok", cwd=built)
    assert result.exit_code == 1
    assert f"export ok ERROR: cannot reach the Hub at http://127.0.0.1:{port}" in result.output
    assert "Traceback" not in result.output


def test_token_from_saved_login_or_a_clear_error(hub, built, tmp_path):
    """No HF_TOKEN: the saved login in HF_HOME is used; with neither, one line says what to do."""
    empty = hf_env(hub.url, tmp_path / "empty-home", token=None)
    done = prefclean_cli(["export", "ok"], built, empty)
    assert done.returncode == 1
    assert "export ok ERROR: no Hugging Face token: set HF_TOKEN or run `hf auth login`" in done.stdout
    assert "datasets/alice/ok-target" not in hub.state()

    home = tmp_path / "logged-in"
    home.mkdir()
    (home / "token").write_text(TOKEN)
    done = prefclean_cli(["export", "ok"], built, hf_env(hub.url, home, token=None))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok-target" in done.stdout and TOKEN not in done.stdout + done.stderr
    assert "data/train-00000-of-00001.parquet" in hub.state()["datasets/alice/ok-target"]["branches"]["main"]["files"]


def test_a_push_that_raced_another_is_refused_whole(hub, built, run_cli, monkeypatch):
    """The commit names the head it was planned against: if the branch moved meanwhile, nothing of ours lands."""
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert run_cli("export", "ok", cwd=built).exit_code == 0
    hub.race("datasets/alice/ok-target")
    result = run_cli("export", "ok_test_split", cwd=built)
    assert result.exit_code == 1, result.output
    assert "export ok_test_split ERROR: datasets/alice/ok-target at " in result.output
    assert "@main changed while pushing (412): run the export again" in result.output
    main = hub.state()["datasets/alice/ok-target"]["branches"]["main"]
    assert main["title"] == "rival push" and not any(p.startswith("data/test-") for p in main["files"])

    result = run_cli("export", "ok_test_split", cwd=built)  # the next try goes through
    assert result.exit_code == 0, result.output
    assert "data/test-00000-of-00001.parquet" in hub.state()["datasets/alice/ok-target"]["branches"]["main"]["files"]


def test_pushing_the_same_data_again_makes_no_commit(hub, built, run_cli, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    first = run_cli("export", "ok", cwd=built)
    assert first.exit_code == 0 and "commit " in first.output, first.output
    commits = hub.state()["datasets/alice/ok-target"]["commits"]
    again = run_cli("export", "ok", cwd=built)
    assert again.exit_code == 0, again.output
    assert "unchanged, already at commit" in again.output
    assert hub.state()["datasets/alice/ok-target"]["commits"] == commits
