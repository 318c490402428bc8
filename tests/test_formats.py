"""Format adapters: every layout staged into one shape by SQL, malformed rows excluded with a reason, and
detection from the first rows (on hand-written fixtures and the real files in ../shared/data)."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from prefclean.formats import FormatError, get_format, staged_rows_sql
from prefclean.formats.detect import describe, detect

REPO = Path(__file__).resolve().parents[1]
# The repository's sibling shared/data (for a worktree under wt/, the nearest ancestor that has one).
SHARED_DATA = next((p / "shared" / "data" for p in REPO.parents if (p / "shared" / "data").is_dir()),
                   REPO.parent / "shared" / "data")
REAL_FILES = {
    "hh_rlhf_harmless_base_test.jsonl": "hh_rlhf",
    "llamafactory_dpo_en_demo.jsonl": "sharegpt",
    "llamafactory_v1_dpo_demo.jsonl": "llamafactory_messages",
    "msfoundry_orca_dpo_validation.openai_dpo.jsonl": "openai_dpo",
    "orca_dpo_pairs.msfoundry_validation.jsonl": "orca",
    "orca_dpo_pairs.llamafactory_v1_demo.jsonl": "orca",
}


def shared_file(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"{path} is absent (the real rows live in the repository's sibling shared/data)")
    return path


def stage(tmp_path, rows, fmt: str | None = None):
    """Write rows as JSONL, read them as DuckDB does, and stage them; returns (format, rows as dicts)."""
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return stage_file(path, fmt)


def stage_file(path: Path, fmt: str | None = None):
    con = duckdb.connect()
    con.execute(f"create table src as select * from read_json('{path}', format='newline_delimited')")
    columns, first = describe(con, "select * from src")
    fmt = fmt or detect(columns, first)
    cur = con.execute(f"select * from ({staged_rows_sql('src', get_format(fmt), columns, original=True)}) "
                      "order by source_row")
    names = [d[0] for d in cur.description]
    return fmt, [dict(zip(names, r)) for r in cur.fetchall()]


def msg(role, content):
    return {"role": role, "content": content}


def test_trl_standard_rows_become_one_user_turn_and_two_responses(tmp_path):
    fmt, rows = stage(tmp_path, [{"prompt": "2+2?", "chosen": "4", "rejected": "5"}])
    assert fmt == "trl_standard"
    assert rows[0]["messages"] == [msg("user", "2+2?")]
    assert (rows[0]["chosen"], rows[0]["rejected"], rows[0]["excluded_reason"]) == ("4", "5", None)
    assert rows[0]["original"] == {"prompt": "2+2?", "chosen": "4", "rejected": "5"}


def test_trl_implicit_prompt_is_the_common_prefix_cut_at_a_word_boundary(tmp_path):
    fmt, rows = stage(tmp_path, [
        {"chosen": "What color is the sky? It is blue.", "rejected": "What color is the sky? It is green."},
        {"chosen": "Totally different", "rejected": "Nothing shared"},
        {"chosen": "Same prompt", "rejected": "Same prompt"},
    ])
    assert fmt == "trl_implicit"
    assert rows[0]["messages"] == [msg("user", "What color is the sky? It is ")]
    assert (rows[0]["chosen"], rows[0]["rejected"]) == ("blue.", "green.")
    assert rows[1]["excluded_reason"] == "no_common_prompt"
    assert rows[2]["excluded_reason"] == "no_response_after_prompt"


def test_trl_conversational_keeps_every_turn_and_takes_the_final_assistant_messages(tmp_path):
    prompt = [msg("system", "Be brief."), msg("user", "Hi"), msg("assistant", "Hello!"), msg("user", "2+2?")]
    fmt, rows = stage(tmp_path, [
        {"prompt": prompt, "chosen": [msg("assistant", "4")], "rejected": [msg("assistant", "5")]},
        {"prompt": prompt, "chosen": [msg("user", "4")], "rejected": [msg("assistant", "5")]},
        {"prompt": prompt[:3], "chosen": [msg("assistant", "4")], "rejected": [msg("assistant", "5")]},
        {"prompt": [], "chosen": [msg("assistant", "4")], "rejected": [msg("assistant", "5")]},
    ])
    assert fmt == "trl_conversational"
    assert rows[0]["messages"] == prompt and rows[0]["excluded_reason"] is None
    assert (rows[0]["system"], rows[0]["instruction"], rows[0]["chosen"]) == ("Be brief.", "2+2?", "4")
    assert rows[1]["excluded_reason"] == "no_final_assistant_turn"
    assert rows[2]["excluded_reason"] == "prompt_does_not_end_on_user_turn"
    assert rows[3]["excluded_reason"] == "empty_conversation"


def test_trl_conversational_implicit_prompt_is_the_shared_run_of_messages(tmp_path):
    shared = [msg("user", "Hi"), msg("assistant", "Hello!"), msg("user", "2+2?")]
    fmt, rows = stage(tmp_path, [
        {"chosen": shared + [msg("assistant", "4")], "rejected": shared + [msg("assistant", "5")]},
        {"chosen": [msg("user", "a"), msg("assistant", "4")], "rejected": [msg("user", "b"), msg("assistant", "5")]},
        {"chosen": shared, "rejected": shared[:2] + [msg("user", "3+3?")]},
    ])
    assert fmt == "trl_conversational_implicit"
    assert rows[0]["messages"] == shared and (rows[0]["chosen"], rows[0]["rejected"]) == ("4", "5")
    assert rows[1]["excluded_reason"] == "no_common_prompt"
    assert rows[2]["excluded_reason"] == "no_final_assistant_turn"


def test_hh_transcripts_split_into_turns_and_malformed_ones_are_excluded_with_reasons(tmp_path):
    prompt = "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: 2+2?"
    fmt, rows = stage(tmp_path, [
        {"chosen": prompt + "\n\nAssistant: 4", "rejected": prompt + "\n\nAssistant: 5"},
        {"chosen": "\n\nHuman: just a question", "rejected": "\n\nHuman: just a question"},
        {"chosen": prompt + "\n\nAssistant: 4\n\nHuman: thanks", "rejected": prompt + "\n\nAssistant: 5"},
        {"chosen": prompt + "\n\nAssistant: 4", "rejected": "\n\nHuman: other\n\nAssistant: 5"},
    ])
    assert fmt == "hh_rlhf"
    assert rows[0]["messages"] == [msg("user", "Hi"), msg("assistant", "Hello!"), msg("user", "2+2?")]
    assert (rows[0]["chosen"], rows[0]["rejected"], rows[0]["excluded_reason"]) == ("4", "5", None)
    assert [r["excluded_reason"] for r in rows[1:]] == ["no_final_assistant_turn", "ends_on_user_turn", "prompts_differ"]


def test_an_hh_answer_that_runs_on_into_another_assistant_turn_is_still_one_answer(tmp_path):
    prompt = "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: 2+2?"
    _, rows = stage(tmp_path, [
        {"chosen": prompt + "\n\nAssistant: 4\n\nAssistant: really 4", "rejected": prompt + "\n\nAssistant: 5"},
        {"chosen": prompt + "\n\nAssistant: 4", "rejected": prompt + "\n\nAssistant: 5\n\nHuman: no?"},
        {"chosen": "Intro\n\nAssistant: 4", "rejected": "Intro\n\nAssistant: 5"},
    ], "hh_rlhf")
    assert rows[0]["messages"] == [msg("user", "Hi"), msg("assistant", "Hello!"), msg("user", "2+2?")]
    assert (rows[0]["chosen"], rows[0]["rejected"], rows[0]["excluded_reason"]) == ("4\n\nAssistant: really 4", "5", None)
    assert [r["excluded_reason"] for r in rows[1:]] == ["ends_on_user_turn", "text_before_first_turn"]


def test_sft_formats_put_the_response_in_chosen(tmp_path):
    _, rows = stage(tmp_path, [{"instruction": "Add", "input": "2 and 2", "output": "4"}])
    assert _ == "alpaca" and rows[0]["messages"] == [msg("user", "Add\n2 and 2")] and rows[0]["chosen"] == "4"
    assert rows[0]["rejected"] is None and rows[0]["excluded_reason"] is None
    fmt, rows = stage(tmp_path, [{"messages": [msg("user", "2+2?"), msg("assistant", "4")]},
                                 {"messages": [msg("user", "2+2?"), msg("assistant", "4"), msg("user", "sure?")]}])
    assert fmt == "sft_messages" and rows[0]["chosen"] == "4" and rows[0]["messages"] == [msg("user", "2+2?")]
    assert rows[1]["excluded_reason"] == "ends_on_user_turn"
    fmt, rows = stage(tmp_path, [{"conversations": [{"from": "human", "value": "2+2?"}, {"from": "gpt", "value": "4"}]}])
    assert fmt == "sft_sharegpt" and rows[0]["messages"] == [msg("user", "2+2?")] and rows[0]["chosen"] == "4"
    fmt, rows = stage(tmp_path, [{"prompt": "2+2?", "completion": "4"}])
    assert fmt == "prompt_completion" and rows[0]["chosen"] == "4" and rows[0]["excluded_reason"] is None


def test_no_format_fits_names_the_columns_it_saw(tmp_path):
    with pytest.raises(FormatError) as exc:
        stage(tmp_path, [{"question": "2+2?", "answer": "4", "score": 3}])
    message = str(exc.value)
    assert "question VARCHAR" in message and "answer VARCHAR" in message and "score BIGINT" in message
    assert "format:" in message


def test_an_unknown_format_name_suggests_the_closest():
    with pytest.raises(FormatError, match="did you mean 'hh_rlhf'"):
        get_format("hh_rlfh")


@pytest.mark.parametrize("name", sorted(REAL_FILES))
def test_each_real_file_is_detected_and_staged(name):
    fmt, rows = stage_file(shared_file(name))
    assert fmt == REAL_FILES[name]
    lines = shared_file(name).read_text(encoding="utf-8").splitlines()
    assert len(rows) == len(lines)
    assert [r["original"] for r in rows] == [json.loads(line) for line in lines]  # the row, unchanged
    fitting = [r for r in rows if r["excluded_reason"] is None]
    assert all(r["messages"][-1]["role"] == "user" and r["chosen"] is not None and r["rejected"] is not None
               for r in fitting)  # (a few hh answers are empty: still a response to judge)
    assert len(fitting) == len(rows)  # every real row fits its format
    if fmt == "hh_rlhf":  # 5 answers run on into an "\n\nAssistant:" turn of their own: still one answer each
        assert sum(1 for r in rows if "\n\nAssistant:" in r["chosen"] + r["rejected"]) == 5


def test_sharegpt_real_rows_keep_multi_turn_conversations():
    _, rows = stage_file(shared_file("llamafactory_dpo_en_demo.jsonl"))
    turns = [len(r["messages"]) for r in rows]
    assert max(turns) >= 3 and sum(1 for t in turns if t >= 3) > 50  # the Capybara-style multi-turn rows
    first = json.loads(shared_file("llamafactory_dpo_en_demo.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert rows[0]["chosen"] == first["chosen"]["value"] and rows[0]["rejected"] == first["rejected"]["value"]


def test_the_judge_prompt_shows_earlier_turns_and_rates_only_the_final_answers():
    from prefclean.judge.tasks import make_task

    task = make_task("ultrafeedback", None)
    single = task.prompt("2+2?", ["4", "5"], "overall-rating", None).messages[1]["content"]
    assert "<conversation>" not in single  # a single-turn pair's prompt is what it always was
    conversation = "\x1e" + json.dumps([msg("system", "Be brief."), msg("user", "Hi"), msg("assistant", "Hello!"),
                                        msg("user", "2+2?")])
    multi = task.prompt(conversation, ["4", "5"], "overall-rating", None).messages[1]["content"]
    assert multi.index('<turn 1 role="system">\nBe brief.') < multi.index('<turn 3 role="assistant">\nHello!') \
        < multi.index("<instruction>\n2+2?\n</instruction>") < multi.index("<text 1>\n4\n</text 1>")
    tail = lambda prompt: prompt[prompt.index("<instruction>"):]  # noqa: E731
    assert tail(multi) == tail(single)  # the same answers to rate, in the same layout


def test_n_completions_stage_every_completion_as_a_response(tmp_path):
    fmt, rows = stage(tmp_path, [{"instruction": "2+2?", "completions": [{"model": "a", "response": "4"},
                                                                          {"model": "b", "response": "5"}]},
                                 {"instruction": "3+3?", "completions": [{"model": "a", "response": "6"}]}])
    assert fmt == "completions" and rows[0]["responses"] == ["4", "5"] and rows[0]["messages"] == [msg("user", "2+2?")]
    assert rows[1]["excluded_reason"] == "fewer_than_two_completions"
    fmt, rows = stage(tmp_path, [{"prompt": "2+2?", "completions": ["4", "5", "22"]}])
    assert fmt == "completions" and rows[0]["responses"] == ["4", "5", "22"] and rows[0]["excluded_reason"] is None


def test_a_trl_response_of_several_messages_is_judged_as_its_turns_rendered_in_order(tmp_path):
    call = {"role": "assistant", "content": None,
            "tool_calls": [{"type": "function", "function": {"name": "weather", "arguments": "{\"city\": \"Paris\"}"}}]}
    chosen = [call, msg("tool", "21 C"), msg("assistant", "It is 21 C in Paris.")]
    fmt, rows = stage(tmp_path, [
        {"prompt": [msg("user", "Weather in Paris?")], "chosen": chosen, "rejected": [msg("assistant", "No idea.")]},
        {"prompt": [msg("user", "Weather in Paris?")], "chosen": chosen[:2], "rejected": [msg("assistant", "No idea.")]},
    ])
    assert fmt == "trl_conversational" and rows[0]["excluded_reason"] is None
    text = rows[0]["chosen"]
    assert text.index("[assistant]\ntool_calls: ") < text.index('"name":"weather"') < text.index("[tool]\n21 C") \
        < text.index("[assistant]\nIt is 21 C in Paris.")
    assert rows[0]["rejected"] == "No idea."  # one message: its text as it is
    assert rows[1]["excluded_reason"] == "no_final_assistant_turn"  # the response must end on the assistant


def parts(*texts, image=False):
    content = [{"type": "text", "text": t} for t in texts]
    return content + [{"type": "image_url", "image_url": {"url": "https://example.org/cat.png"}}] if image else content


def test_content_parts_are_read_as_their_text_in_every_message_format_and_images_exclude_the_row(tmp_path):
    def user(*texts, image=False):
        return {"role": "user", "content": parts(*texts, image=image)}

    def answer(text):
        return [{"role": "assistant", "content": parts(text)}]

    cases = {
        "trl_conversational": lambda image: {"prompt": [user("Add ", "2 and 2", image=image)], "chosen": answer("4"),
                                             "rejected": answer("5")},
        "openai_dpo": lambda image: {"input": {"messages": [user("Add ", "2 and 2", image=image)]},
                                     "preferred_output": answer("4"), "non_preferred_output": answer("5")},
        "sft_messages": lambda image: {"messages": [user("Add ", "2 and 2", image=image)] + answer("4")},
        "trl_conversational_implicit": lambda image: {"chosen": [user("Add ", "2 and 2", image=image)] + answer("4"),
                                                      "rejected": [user("Add ", "2 and 2", image=image)] + answer("5")},
    }
    for name, row in cases.items():
        fmt, rows = stage(tmp_path, [row(False), row(True)])
        assert fmt == name
        assert rows[0]["messages"] == [msg("user", "Add 2 and 2")] and rows[0]["chosen"] == "4", name
        assert rows[0]["excluded_reason"] is None and rows[1]["excluded_reason"] == "non_text_content", name


def test_content_that_is_text_in_some_messages_and_parts_in_others_is_read_as_text(tmp_path):
    fmt, rows = stage(tmp_path, [
        {"prompt": [msg("user", "Plain question")], "chosen": [msg("assistant", "4")], "rejected": [msg("assistant", "5")]},
        {"prompt": [{"role": "user", "content": parts("Parts ", "question")}], "chosen": [msg("assistant", "4")],
         "rejected": [{"role": "assistant", "content": parts("5")}]},
        {"prompt": [{"role": "user", "content": parts("Look", image=True)}], "chosen": [msg("assistant", "4")],
         "rejected": [msg("assistant", "5")]},
    ])
    assert fmt == "trl_conversational"
    assert [r["messages"][0]["content"] for r in rows[:2]] == ["Plain question", "Parts question"]
    assert rows[1]["rejected"] == "5" and [r["excluded_reason"] for r in rows] == [None, None, "non_text_content"]


def test_distilabel_generations_are_n_completions_too(tmp_path):
    fmt, rows = stage(tmp_path, [{"instruction": "Capital of Spain?", "generations": ["Madrid", "Barcelona"],
                                  "model_name": "m"}])
    assert fmt == "completions" and rows[0]["responses"] == ["Madrid", "Barcelona"]
    assert rows[0]["excluded_reason"] is None


def test_source_lines_that_no_longer_match_the_staged_rows_fail_instead_of_shifting(tmp_path):
    from prefclean.formats.templates import _checked_lines

    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n', encoding="utf-8")
    lines = f"select row_number() over () as source_row, json::varchar as line from read_json_objects('{path}')"
    con = duckdb.connect()
    con.execute("create table staged as select * from range(2)")
    assert con.execute(_checked_lines(lines, "staged", "pairs")).fetchall() == [(1, '{"a": 1}'), (2, '{"a": 2}')]
    con.execute("insert into staged values (3)")
    with pytest.raises(duckdb.Error, match="source 'pairs': its file no longer has as many JSON lines"):
        con.execute(_checked_lines(lines, "staged", "pairs")).fetchall()
