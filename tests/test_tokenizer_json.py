"""`tokenizer: path/to/tokenizer.json` (issue 15 §1): `prefclean plan` counts prompt tokens with the `tokenizers`
package and the chat template shipped beside the file, exactly; without a template the markup is estimated, and
without the package the whole count is estimated, each saying so.

The tokenizer is trained here, in the test, on a few lines of text (no Hub); the expected counts come from
prompts exactly as a build would send them (`prefclean batch export` writes their request bodies), put through
the chat template written out by hand below."""

from __future__ import annotations

import json
import sys

import pytest

from judge_fixtures import judge_project

ROWS = [{"id": i, "instruction": f"Which planet is number {i} from the sun?",
         "generations": [f"Planet {i} is the one you want.", "I do not know, sorry."]} for i in range(4)]
SPECIAL = ["<s>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
TEMPLATE = ("{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
            "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")


def by_hand(messages: list[dict]) -> str:
    """TEMPLATE, rendered without Jinja."""
    return "<s>" + "".join(f"<|{m['role']}|>\n{m['content']}<|end|>\n" for m in messages) + "<|assistant|>\n"


def train_tokenizer(folder, with_template: bool = True):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["[UNK]", *SPECIAL],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    corpus = [r["instruction"] + " " + " ".join(r["generations"]) for r in ROWS] * 20
    corpus += ["Rate each response from 1 to 5 for its overall quality and explain the rating."] * 20
    tokenizer.train_from_iterator(corpus, trainer)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    if with_template:
        (folder / "tokenizer_config.json").write_text(json.dumps(
            {"bos_token": {"content": "<s>"}, "eos_token": "<|end|>", "chat_template": TEMPLATE}), encoding="utf-8")
    return tokenizer


def project(make_project):
    judge = {"engine": "openai-batch", "base_url": "http://127.0.0.1:9/v1", "model": "m", "tokenizer": "tok/tokenizer.json"}
    return judge_project(make_project, None, ROWS, judges={"fake": judge})


def plan(run_cli, root) -> dict:
    result = run_cli("plan", "--project-dir", root, "--json")
    assert result.exit_code == 0, result
    return json.loads(result.output)["judges"][0]


def sent_messages(run_cli, root, tmp_path) -> list[list[dict]]:
    out = tmp_path / "requests.jsonl"
    result = run_cli("batch", "export", "--project-dir", root, "-o", out)
    assert result.exit_code == 0, result
    return [json.loads(line)["body"]["messages"] for line in out.read_text().splitlines()]


def test_plan_counts_exactly_with_the_tokenizer_and_its_chat_template(make_project, run_cli, tmp_path):
    pytest.importorskip("tokenizers")  # a dev dependency (pyproject.toml)
    root = project(make_project)
    tokenizer = train_tokenizer(root / "tok")
    j = plan(run_cli, root)
    messages = sent_messages(run_cli, root, tmp_path)
    expected = sum(len(tokenizer.encode(by_hand(m), add_special_tokens=False).ids) for m in messages)
    estimate = sum(len("\n".join(x["content"] for x in m)) // 4 for m in messages)
    assert (j["token_count"], j["token_count_why"], j["requests"]) == ("exact", None, 4)
    assert j["prompt_tokens"] == expected and expected != estimate
    # each special token is one token, not its characters: the template's markup was counted as the model sees it
    assert tokenizer.encode("<|assistant|>", add_special_tokens=False).ids == [tokenizer.token_to_id("<|assistant|>")]


def test_without_a_chat_template_the_text_is_counted_and_the_markup_estimated(make_project, run_cli, tmp_path):
    pytest.importorskip("tokenizers")
    root = project(make_project)
    tokenizer = train_tokenizer(root / "tok", with_template=False)
    j = plan(run_cli, root)
    messages = sent_messages(run_cli, root, tmp_path)
    assert j["token_count"] == "estimated" and "no chat template beside tokenizer.json" in j["token_count_why"]
    assert j["prompt_tokens"] == sum(len(tokenizer.encode(x["content"], add_special_tokens=False).ids) + 4
                                     for m in messages for x in m)


def test_without_the_tokenizers_package_the_plan_estimates_and_says_why(make_project, run_cli, tmp_path, monkeypatch):
    root = project(make_project)
    (root / "tok").mkdir()
    (root / "tok" / "tokenizer.json").write_text("{}", encoding="utf-8")  # never read: the package is missing
    monkeypatch.setitem(sys.modules, "tokenizers", None)  # `import tokenizers` raises ImportError
    j = plan(run_cli, root)
    messages = sent_messages(run_cli, root, tmp_path)
    assert j["token_count"] == "estimated" and "needs the tokenizers package" in j["token_count_why"]
    assert j["prompt_tokens"] == sum(len("\n".join(x["content"] for x in m)) // 4 for m in messages)
    result = run_cli("plan", "--project-dir", root)
    assert "prompt (estimated: `tokenizer: tok/tokenizer.json` needs the tokenizers package" in result.output


def test_a_tokenizer_file_that_is_not_one_is_an_error_naming_it(make_project, run_cli):
    pytest.importorskip("tokenizers")
    root = project(make_project)
    (root / "tok").mkdir()
    (root / "tok" / "tokenizer.json").write_text("{\"not\": \"a tokenizer\"}", encoding="utf-8")
    result = run_cli("plan", "--project-dir", root)
    assert result.exit_code == 1 and "tokenizer.json is not a tokenizer.json the tokenizers package can read" in \
        result.output, result.output
