"""Judge tasks: how a row becomes chat messages, and how an answer becomes a verdict.

Prompts are Jinja templates in prefclean/judge/templates/. A project overrides one by putting a file of
the same name in its `judge_templates/` folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import jinja2

from .. import plugins
from ..errors import JudgeError
from .parsing import parse_ratings, parse_verdict
from .structured import RATIONALES

ASPECTS = ("overall-rating", "helpfulness", "honesty", "instruction-following", "truthfulness")
TEMPLATES_DIR = Path(__file__).parent / "templates"


@dataclass
class Verdict:
    ratings: list[int | None] | None
    rationales: list[str | None] | None
    winner: int | None = None  # 1-based index of the preferred generation, when there is one
    error: str | None = None


@dataclass(frozen=True)
class Style:
    """How a judge is asked to answer (its `rationale:` and `structured_output:` settings): the prompt templates
    see both (`rationale`, `structured`), the schema and grammar follow the rationale."""

    rationale: str = "full"  # none | short | full
    structured: str = ""  # a JSON answer, its schema sent as response_format: "json_schema" or "json_object"

    def __post_init__(self):
        if self.rationale not in RATIONALES:
            raise JudgeError(f"rationale: '{self.rationale}' is not one of {', '.join(RATIONALES)}")

    @property
    def default(self) -> bool:
        return self == DEFAULT_STYLE

    def identity(self) -> str:
        """A suffix for the judgment cache key ("" for the default style, so older keys still match)."""
        return "" if self.default else f"|rationale={self.rationale}|structured={self.structured or 0}"


DEFAULT_STYLE = Style()


@dataclass
class Prompt:
    messages: list[dict]
    n: int  # how many generations the answer must rate


class Task:
    name = ""
    grammar_name = ""
    schema_name = ""  # the function of structured.py that makes its answer's JSON schema
    templates: tuple[str, ...] = ()  # the Jinja files its prompts are rendered from
    templates_dir: Path | None = None  # where a plugin's task keeps them (searched before prefclean's own)
    #: For the offline smoke-test judge: a shorter template rendered instead of one of prefclean's own, and the
    #: words each free-text line of its grammar may have, without section headers (a short prompt and answer).
    compact_templates: dict[str, str] = {}
    compact_words = 1
    #: Its prompt is a function of the row's fields, its templates and its module's code only, so the judgment
    #: cache can key a row without rendering it (keys.py). Declared by each class itself: a subclass that
    #: overrides `prompt` may read more.
    keys_from_inputs = False

    def __init__(self, env: jinja2.Environment, substitutes: dict[str, str] | None = None):
        self.env = env
        self.substitutes = substitutes or {}  # template -> the one rendered instead (a compact task)
        self._grammars: dict[int, str] = {}
        self._templates: dict[str, jinja2.Template] = {}
        self._constant: dict[str, str] = {}

    def render(self, template: str, style: Style = DEFAULT_STYLE, **values) -> str:
        return self._template(template).render(rationale=style.rationale, structured=style.structured,
                                               **values).strip()

    def _template(self, name: str) -> jinja2.Template:
        # Loaded once per build: get_template() stats the file on every call, once per judged row.
        if name not in self._templates:
            self._templates[name] = self.env.get_template(self.substitutes.get(name, name))
        return self._templates[name]

    @property
    def rendered_templates(self) -> tuple[str, ...]:
        """The template files this task's prompts are rendered from (a compact task's substitutes included)."""
        return tuple(self.substitutes.get(name, name) for name in self.templates)

    def compile_templates(self) -> None:
        """Load and compile every template now (a build's warm-up), not when the first row is rendered."""
        for name in self.templates:
            self._template(name)

    def render_constant(self, template: str, style: Style = DEFAULT_STYLE) -> str:
        """A template without row variables (a system prompt), rendered once per style."""
        key = f"{template}{style.identity()}"
        if key not in self._constant:
            self._constant[key] = self.render(template, style)
        return self._constant[key]

    def check(self, aspect: str) -> None:
        """Refuse a call that can never be judged (before any row is), e.g. an unknown aspect."""

    def prompt(self, instruction: str, generations: list[str], aspect: str, reference: str | None,
               style: Style = DEFAULT_STYLE) -> Prompt:
        raise NotImplementedError

    def parse(self, text: str, n: int) -> Verdict:
        raise NotImplementedError

    def grammar(self, n: int, rationale: str = "full") -> str:
        """A GBNF grammar forcing the answer's shape, for engines that can constrain sampling."""
        if (n, rationale) not in self._grammars:
            from . import grammar

            make = getattr(grammar, self.grammar_name)
            if self.grammar_name != "ratings_grammar":
                self._grammars[n, rationale] = make(rationale)
            elif self.substitutes:  # the compact task: short labels, a word of rationale
                self._grammars[n, rationale] = grammar.compact_ratings_grammar(n, self.compact_words)
            else:
                self._grammars[n, rationale] = make(n, rationale)
        return self._grammars[n, rationale]

    def response_format(self, n: int, rationale: str = "full", kind: str = "json_schema") -> dict | None:
        """The chat-completions `response_format` (a JSON schema) for an answer about n texts, or None when
        the task has no schema (a plugin's task may not)."""
        if not self.schema_name:
            return None
        from . import structured

        make = getattr(structured, self.schema_name)
        schema = make(n, rationale) if self.schema_name == "ratings_schema" else make(rationale)
        return structured.response_format(self.name, schema, kind)


CONVERSATION_MARK = "\x1e"  # an instruction that starts with it is a conversation (macros/conversation.sql)


def conversation_turns(instruction: str) -> tuple[str, list[dict]]:
    """(the final user turn, the turns before it) of what a model passed as the instruction. A plain
    instruction has no earlier turns; a conversation is CONVERSATION_MARK + its messages as JSON."""
    if not instruction.startswith(CONVERSATION_MARK):
        return instruction, []
    try:
        messages = json.loads(instruction[1:])
        turns = [{"role": str(m["role"]), "content": "" if m["content"] is None else str(m["content"])}
                 for m in messages]
    except (ValueError, TypeError, KeyError):
        return instruction[1:], []  # not a conversation after all: judge the text as it is
    if not turns:
        return "", []
    return turns[-1]["content"], turns[:-1]


def _winner(ratings: list[int | None]) -> int | None:
    if not ratings or any(r is None for r in ratings):
        return None
    best = max(ratings)
    return ratings.index(best) + 1 if ratings.count(best) == 1 else None


class UltraFeedback(Task):
    """One 1-5 rating and a rationale per generation, for one aspect."""

    name, grammar_name, schema_name = "ultrafeedback", "ratings_grammar", "ratings_schema"
    templates = ("ultrafeedback_system.jinja", "ultrafeedback.jinja", "_conversation.jinja")
    keys_from_inputs = True
    compact_templates = {"ultrafeedback.jinja": "ultrafeedback_smoke.jinja"}

    def check(self, aspect):
        if aspect not in ASPECTS:
            raise JudgeError(f"unknown aspect '{aspect}' (one of {', '.join(ASPECTS)})")

    def prompt(self, instruction, generations, aspect, reference, style=DEFAULT_STYLE):
        self.check(aspect)
        instruction, turns = conversation_turns(instruction)
        return Prompt([
            {"role": "system", "content": self.render_constant("ultrafeedback_system.jinja", style)},
            {"role": "user", "content": self.render("ultrafeedback.jinja", style, instruction=instruction, turns=turns,
                                                    generations=generations, aspect=aspect)},
        ], len(generations))

    def parse(self, text, n):
        parsed = parse_ratings(text, n)
        return Verdict(parsed.ratings, parsed.rationales, _winner(parsed.ratings), parsed.error)


class PrometheusAbsolute(Task):
    """Absolute grading of one response against a rubric (optional reference answer)."""

    name, grammar_name, schema_name = "prometheus-absolute", "prometheus_absolute_grammar", "prometheus_absolute_schema"
    templates = ("prometheus_absolute.jinja", "_conversation.jinja")
    keys_from_inputs = True

    def prompt(self, instruction, generations, aspect, reference, style=DEFAULT_STYLE):
        if len(generations) != 1:
            raise JudgeError("prometheus-absolute grades one response per row")
        instruction, turns = conversation_turns(instruction)
        return Prompt([{"role": "user", "content": self.render(
            "prometheus_absolute.jinja", style, instruction=instruction, turns=turns, response=generations[0],
            rubric=aspect, reference=reference)}], 1)

    def parse(self, text, n):
        score, feedback, error = parse_verdict(text, relative=False)
        return Verdict([score], [feedback], 1 if score is not None else None, error)


class PrometheusRelative(Task):
    """Relative grading of two responses: which one is better (A or B)."""

    name, grammar_name, schema_name = "prometheus-relative", "prometheus_relative_grammar", "prometheus_relative_schema"
    templates = ("prometheus_relative.jinja", "_conversation.jinja")
    keys_from_inputs = True

    def prompt(self, instruction, generations, aspect, reference, style=DEFAULT_STYLE):
        if len(generations) != 2:
            raise JudgeError("prometheus-relative compares exactly two responses per row")
        instruction, turns = conversation_turns(instruction)
        return Prompt([{"role": "user", "content": self.render(
            "prometheus_relative.jinja", style, instruction=instruction, turns=turns, response_a=generations[0],
            response_b=generations[1], rubric=aspect, reference=reference)}], 2)

    def parse(self, text, n):
        letter, feedback, error = parse_verdict(text, relative=True)
        winner = {"A": 1, "B": 2}.get(letter) if letter else None
        return Verdict(None, [feedback], winner, error)


def make_task(name: str, project_root: Path | None, compact: bool = False) -> Task:
    """The task of this name (prefclean's own or an installed package's: see plugins), its templates found
    in the project's judge_templates/ first. `compact` (the smoke-test judge): its compact templates instead of
    prefclean's own, except those the project overrides."""
    cls = plugins.load(plugins.TASKS, name, error=JudgeError)
    if not (isinstance(cls, type) and issubclass(cls, Task)) or cls.name != name:
        raise JudgeError(f"the judge task registered as '{name}' is not a Task subclass whose name is '{name}'")
    loaders: list[jinja2.BaseLoader] = []
    if project_root is not None and (project_root / "judge_templates").is_dir():
        loaders.append(jinja2.FileSystemLoader(project_root / "judge_templates"))
    if cls.templates_dir is not None:
        loaders.append(jinja2.FileSystemLoader(cls.templates_dir))
    loaders.append(jinja2.FileSystemLoader(TEMPLATES_DIR))
    env = jinja2.Environment(loader=jinja2.ChoiceLoader(loaders), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=False)
    substitutes = {}
    if compact:
        own = project_root / "judge_templates" if project_root is not None else None
        substitutes = {name: short for name, short in cls.compact_templates.items()
                       if own is None or not (own / name).is_file()}
    return cls(env, substitutes)
