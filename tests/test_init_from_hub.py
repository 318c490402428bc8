"""`prefclean init --from OWNER/NAME`: a Hub dataset (here on the fake Hub, with real rows from ../shared/data)
is read with `datasets`, cleaned, and pushed back with the same features."""

from __future__ import annotations

import json
import subprocess
import sys

import yaml
from judge_fixtures import judge_config
from test_export_hub import hf_env, hub, prefclean_cli  # noqa: F401  (hub: the module's fake Hub)
from test_formats import shared_file

FEATURES = """
import json, sys
import datasets
datasets.disable_progress_bars()
out = []
for repo in sys.argv[1:]:
    ds = datasets.load_dataset(repo, split="train")
    out.append({"features": repr(ds.features), "rows": ds.data.table.to_pylist()})
print(json.dumps(out))
"""


def features_and_rows(env, *repos):
    done = subprocess.run([sys.executable, "-c", FEATURES, *repos], env=env, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_hub_dataset_is_cleaned_and_pushed_back_with_the_same_features(hub, tmp_path, fake_judge):  # noqa: F811
    env = hf_env(hub.url, tmp_path / "hf")
    # the user's dataset on the Hub: the real LLaMA-Factory v1 rows, pushed by a one-model project
    upload = tmp_path / "upload"
    (upload / "models").mkdir(parents=True)
    (upload / "models/rows.sql").write_text("{{ config(materialized='table') }} select * from {{ source('raw') }}")
    (upload / "prefclean.yml").write_text(yaml.safe_dump({
        "name": "upload", "sources": {"raw": {"type": "jsonl", "path": str(shared_file("llamafactory_v1_dpo_demo.jsonl"))}},
        "exports": {"hub": {"model": "rows", "target": "hub", "repo_id": "alice/lf-v1"}}}))
    done = prefclean_cli(["build"], upload, env)
    assert done.returncode == 0, done.stdout + done.stderr

    done = prefclean_cli(["init", "proj", "--from", "alice/lf-v1"], tmp_path, env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "format: llamafactory_messages (detected, dpo)" in done.stdout
    root = tmp_path / "proj"
    fake_judge.control(position_ratings=[5, 2])
    config = yaml.safe_load((root / "prefclean.yml").read_text())
    assert config["sources"]["lf_v1"] == {"type": "huggingface", "path": "alice/lf-v1", "split": "train",
                                          "format": "llamafactory_messages"}
    config["judges"] = {"fake": judge_config(fake_judge)}
    config["vars"].update(judges=["fake"], check_position_bias=False)
    config["exports"]["hub"].update(repo_id="alice/lf-v1-cleaned", on_build=True)
    (root / "prefclean.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    done = prefclean_cli(["build"], root, env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "export hub OK" in done.stdout

    source, cleaned = features_and_rows(env, "alice/lf-v1", "alice/lf-v1-cleaned")
    assert cleaned["features"] == source["features"]
    assert (root / "target/exports/lf_v1_cleaned.parquet").exists()  # and a local copy
    assert 0 < len(cleaned["rows"]) < len(source["rows"])  # about half kept, the rest dropped
    assert all(row in source["rows"] for row in cleaned["rows"])  # each exactly as it was
