"""A judgment belongs to what made it: a judge changed under the same name re-judges exactly the rows it judged
(counted on the fake judge), the judgment cache answers what cannot have changed, and --refresh-judgments asks
the judge again and says how many."""

from __future__ import annotations

import re

import yaml

from judge_fixtures import build, copy_example, judge_config, judged

from prefclean.judge.tasks import TEMPLATES_DIR
from servers.fake_judge import FakeJudge

PAIRS = [{"system": "", "instruction": f"question {i}", "chosen": f"good answer {i} [[rate=5]]",
          "rejected": f"poor answer {i} [[rate=2]]"} for i in range(6)]


def example(tmp_path, server, judges, panel):
    root = copy_example(tmp_path, server, rows=PAIRS, vars={"judges": panel, "check_position_bias": False})
    edit_config(root, lambda c: c.update(judges=judges))
    return root


def edit_config(root, change):
    path = root / "prefclean.yml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(config)
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def requests_by_model(server, run_cli, root, *args):
    server.reset()
    result, _ = build(run_cli, root, *args)
    return server.stats()["models"], result


def models_in_table(root, position):
    return judged(root, f"select distinct judgments[{position}].model as m from judged_pairs")


def test_a_judge_changed_under_its_name_rejudges_exactly_its_rows(tmp_path, run_cli, fake_judge):
    judges = {"fake": judge_config(fake_judge), "other": judge_config(fake_judge, model="other-judge")}
    root = example(tmp_path, fake_judge, judges, ["fake", "other"])
    assert requests_by_model(fake_judge, run_cli, root)[0] == {"fake-judge": 6, "other-judge": 6}
    assert requests_by_model(fake_judge, run_cli, root)[0] == {}  # nothing changed: nothing asked

    def other(**settings):
        edit_config(root, lambda c: c["judges"]["other"].update(settings))

    other(model="other-judge-2")  # its model: only its rows, the other judge's answers come from the cache
    assert requests_by_model(fake_judge, run_cli, root)[0] == {"other-judge-2": 6}
    assert models_in_table(root, 2) == [{"m": "other-judge-2"}] and models_in_table(root, 1) == [{"m": "fake-judge"}]

    other(temperature=0.1)  # a generation parameter
    assert requests_by_model(fake_judge, run_cli, root)[0] == {"other-judge-2": 6}

    other(engine="hf-inference")  # the engine (the same server, through huggingface_hub)
    models, result = requests_by_model(fake_judge, run_cli, root)
    assert models == {"other-judge-2": 6} and "judge other (hf-inference other-judge-2" in result.output

    other(engine="openai", temperature=0.7, model="other-judge")  # back as it was: the cache has every answer
    assert requests_by_model(fake_judge, run_cli, root)[0] == {}
    assert models_in_table(root, 2) == [{"m": "other-judge"}]


def test_a_judge_named_only_by_its_server_is_rejudged_when_the_server_changes(tmp_path, run_cli, fake_judge):
    unnamed = {k: v for k, v in judge_config(fake_judge).items() if k != "model"}  # whatever the server serves
    root = example(tmp_path, fake_judge, {"fake": unnamed}, ["fake"])
    build(run_cli, root)
    with FakeJudge() as elsewhere:
        edit_config(root, lambda c: c["judges"]["fake"].update(base_url=elsewhere.url))
        fake_judge.reset()
        build(run_cli, root)
        assert elsewhere.stats()["requests"] == 6 and fake_judge.stats()["requests"] == 0  # not the old answers


def test_switching_default_judge_rejudges_a_default_panel(tmp_path, run_cli, fake_judge):
    judges = {"a": judge_config(fake_judge, model="judge-a"), "b": judge_config(fake_judge, model="judge-b")}
    root = example(tmp_path, fake_judge, judges, ["default"])
    edit_config(root, lambda c: c.update(default_judge="a"))
    assert requests_by_model(fake_judge, run_cli, root)[0] == {"judge-a": 6}
    edit_config(root, lambda c: c.update(default_judge="b"))
    assert requests_by_model(fake_judge, run_cli, root)[0] == {"judge-b": 6}
    assert models_in_table(root, 1) == [{"m": "judge-b"}]
    edit_config(root, lambda c: c.update(default_judge="a"))
    assert requests_by_model(fake_judge, run_cli, root)[0] == {}  # judge-a's answers are still cached
    assert models_in_table(root, 1) == [{"m": "judge-a"}]


def test_a_project_prompt_template_rejudges_every_row_and_removing_it_costs_nothing(tmp_path, run_cli, fake_judge):
    root = example(tmp_path, fake_judge, {"fake": judge_config(fake_judge)}, ["fake"])
    build(run_cli, root)
    template = root / "judge_templates" / "ultrafeedback.jinja"
    template.parent.mkdir()
    template.write_text((TEMPLATES_DIR / "ultrafeedback.jinja").read_text(encoding="utf-8")
                        + "\nBe strict.\n", encoding="utf-8")
    fake_judge.control(record_prompts=True)
    assert requests_by_model(fake_judge, run_cli, root)[0] == {"fake-judge": 6}
    assert requests_by_model(fake_judge, run_cli, root)[0] == {}  # judged with it already
    template.write_text(template.read_text(encoding="utf-8") + "Be fair.\n", encoding="utf-8")
    fake_judge.control(record_prompts=True)
    build(run_cli, root)
    prompts = fake_judge.stats()["prompts"]
    assert len(prompts) == 6 and all(p.rstrip().endswith("Be strict.\nBe fair.") for p in prompts)
    template.unlink()
    assert requests_by_model(fake_judge, run_cli, root)[0] == {}  # the built-in prompt's answers are cached


def test_refresh_judgments_asks_the_judge_again_for_every_row_and_says_how_many(tmp_path, run_cli, fake_judge):
    root = example(tmp_path, fake_judge, {"fake": judge_config(fake_judge)}, ["fake"])
    build(run_cli, root)
    models, result = requests_by_model(fake_judge, run_cli, root, "--refresh-judgments")
    assert models == {"fake-judge": 6}
    assert "judge fake: --refresh-judgments re-asked the judge for 6 rows" in result.output
    assert requests_by_model(fake_judge, run_cli, root)[0] == {}  # the next plain build: nothing stale, nothing asked


def test_the_identity_is_in_the_compiled_sql_and_needs_no_engine(tmp_path, run_cli, fake_judge):
    judges = {"fake": judge_config(fake_judge), "hf": {"engine": "hf-inference", "model": "org/needs-a-token"}}
    root = example(tmp_path, fake_judge, judges, ["fake", "hf"])
    result = run_cli("compile", "--project-dir", root)
    assert result.exit_code == 0, result.output  # no token needed to compile
    sql = (root / "target" / "compiled" / "models" / "judged_pairs.sql").read_text(encoding="utf-8")
    assert re.search(r"'fake,hf\|overall-rating\|[0-9a-f]{16}\|bias=False' as judged_with", sql), sql
