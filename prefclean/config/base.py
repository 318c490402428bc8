"""The base of every prefclean.yml section: an unknown key is an error, a value of the wrong kind is an error,
and either is reported as one line naming the key path (`judges.fast.temprature`), with a "did you mean".

Pydantic does the checking; this module turns its ValidationError into prefclean's ProjectError (exit 2),
the way SQLMesh wraps pydantic errors into its ConfigError, so no user ever sees pydantic's multi-line report.
"""

from __future__ import annotations

import difflib
import typing
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from ..errors import ProjectError

PROJECT_FILE = "prefclean.yml"


def config_error(text: str, key: str | None = None) -> PydanticCustomError:
    """An error raised inside a validator: `text` follows the key path (plus `key`, when it names a sub-key)."""
    return PydanticCustomError("prefclean", "{text}", {"text": text, "key": key})


class ConfigModel(BaseModel):
    """A section of prefclean.yml: frozen, unknown keys forbidden."""

    # strict: a value is taken as written (`seed: true` is not 1, `on_build: "no"` not false); defer_build: a
    # class is built when first used (the whole file model at load), not at import.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, validate_default=False,
                              protected_namespaces=(), defer_build=True, allow_inf_nan=False)

    #: Other spellings a key may be given in, e.g. {"max_new_tokens": "max_tokens"} (Hugging Face's name).
    #: Both at once is an error; the schema lists the alias too, so editors complete it.
    aliases: ClassVar[dict[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _resolve_aliases(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not any(alias in data for alias in cls.aliases):
            return data
        data = dict(data)
        for alias, key in cls.aliases.items():
            if alias in data:
                if key in data:
                    raise config_error(f"and `{key}` are the same setting: give one", key=alias)
                data[key] = data.pop(alias)
        return data

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema, handler):
        schema = handler(core_schema)
        target = handler.resolve_ref_schema(schema)
        properties = target.get("properties", {})
        for alias, key in cls.aliases.items():
            if key in properties:
                properties[alias] = {k: v for k, v in properties[key].items() if k != "title"}
                properties[alias]["description"] = f"Another name for `{key}`."
        return schema

    @classmethod
    def config_keys(cls) -> list[str]:
        """The keys this section takes in prefclean.yml (aliases included), for suggestions and tests."""
        names = [field.alias or name for name, field in cls.model_fields.items() if not field.exclude]
        return names + list(cls.aliases)


def as_tuple(value: Any) -> Any:
    """YAML gives lists; a frozen section keeps tuples (strict mode takes no list for a tuple)."""
    return tuple(value) if isinstance(value, list) else value


def article(word: str) -> str:
    return f"{'an' if word[:1] in 'aeio' else 'a'} {word}"


def _type_name(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def _join(parts: list) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def did_you_mean(word: str, choices, *, quote: str = "`") -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean {quote}{close[0]}{quote}?" if close else ""


_WHAT = {  # pydantic error type -> what the value must be
    "dict_type": "a mapping", "model_type": "a mapping", "model_attributes_type": "a mapping",
    "list_type": "a list", "tuple_type": "a list", "string_type": "a string", "bool_type": "true or false",
    "bool_parsing": "true or false", "int_type": "a whole number", "int_parsing": "a whole number",
    "int_from_float": "a whole number", "float_type": "a number", "float_parsing": "a number",
    "finite_number": "a finite number", "string_too_short": "a non-empty string",
}
_BOUNDS = {"greater_than_equal": (">=", "ge"), "greater_than": (">", "gt"), "less_than_equal": ("<=", "le"),
           "less_than": ("<", "lt")}


class ErrorContext:
    """Maps a pydantic error location back to what the user wrote: the key path in their file, and the
    section class (a judge engine's options, an export target's) whose keys a misspelling is compared with."""

    def __init__(self, raw: Any, top: type[ConfigModel], sections: dict[str, dict[str, type[ConfigModel]]],
                 singles: dict[str, type[ConfigModel]], what: dict[str, str]):
        self.raw, self.top, self.sections, self.singles, self.what = raw, top, sections, singles, what
        self.aliases: dict[str, list[str]] = {}
        for cls in [top, *singles.values(), *(c for kinds in sections.values() for c in kinds.values())]:
            for alias, key in cls.aliases.items():
                self.aliases.setdefault(key, []).append(alias)

    def path(self, loc: tuple, kind: str = "") -> list:
        """The user's key path: union tags (the engine or target pydantic adds to `loc`) are left out, and a key
        the user spelled as an alias is shown as they spelled it."""
        node, parts = self.raw, []
        for i, part in enumerate(loc):
            if isinstance(node, dict):
                spelled = part if part in node else next((a for a in self.aliases.get(part, ()) if a in node), None)
                if spelled is not None:
                    parts.append(spelled)
                    node = node[spelled]
                    continue
                if i == len(loc) - 1 and kind in ("missing", "extra_forbidden"):
                    parts.append(part)
                continue
            if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
                parts.append(part)
                node = node[part]
        return parts

    def owner(self, loc: tuple, parts: list) -> tuple[type[ConfigModel] | None, str]:
        """The section class that holds the key at `parts[-1]`, and how to name it ("the openai engine")."""
        if len(parts) == 1:
            return self.top, "top-level"
        if len(parts) == 2 and parts[0] in self.singles:
            return self.singles[parts[0]], ""
        if len(parts) == 3 and parts[0] in self.sections and len(loc) >= 3:
            kind = loc[2]
            cls = self.sections[parts[0]].get(kind)
            if cls is not None:
                return cls, self.what[parts[0]].format(kind=kind, a_kind=article(kind))
        if len(parts) > 3 and parts[0] in self.sections and len(loc) >= 3:  # a nested section (judges.x.budget)
            cls = self.sections[parts[0]].get(loc[2])
            for part in parts[2:-1]:
                field = cls.model_fields.get(part) if cls is not None else None
                cls = next((t for t in (*typing.get_args(field.annotation), field.annotation)
                            if isinstance(t, type) and issubclass(t, ConfigModel)), None) if field else None
            return cls, ""
        return None, ""

    def message(self, error: dict) -> str:
        loc, kind, ctx = tuple(error["loc"]), error["type"], error.get("ctx") or {}
        parts = self.path(loc, kind)
        path, value = _join(parts), error.get("input")
        if kind == "prefclean":
            if ctx.get("key"):
                path = _join([*parts, ctx["key"]])
            text = ctx["text"]
            return f"`{path}`{text}" if text.startswith(":") else f"`{path}` {text}"
        if kind == "extra_forbidden":
            return self._unknown_key(loc, parts)
        if kind == "missing":
            cls, _ = self.owner(loc, parts)
            field = cls.model_fields.get(parts[-1]) if cls else None
            if field is not None and field.description:
                return f"`{path}` must be {field.description.rstrip('.')}, got nothing"
            return f"`{path}` is required"
        if kind in ("union_tag_invalid", "union_tag_not_found"):
            key = str(ctx.get("discriminator", "")).strip("'")
            kinds = self.sections.get(parts[0], {}) if parts else {}
            expected = ", ".join(kinds) or str(ctx.get("expected_tags", ""))
            if kind == "union_tag_not_found":
                misspelled = self._misspelled_key(parts)
                if misspelled:
                    return misspelled
                inferred = " and cannot be inferred from `path`" if key == "type" else ""
                return f"`{_join([*parts, key])}` is missing{inferred} (one of {expected})"
            return (f"`{_join([*parts, key])}` is '{ctx.get('tag')}', expected one of {expected}"
                    + did_you_mean(ctx.get("tag"), kinds, quote="'"))
        if kind == "literal_error":
            return f"`{path}` is {value!r}, expected {ctx.get('expected')}"
        if kind in _BOUNDS:
            sign, name = _BOUNDS[kind]
            bound = ctx.get(name)
            bound = int(bound) if isinstance(bound, float) and bound.is_integer() else bound
            return f"`{path}` must be {self._number(loc, parts, value)} {sign} {bound}, got {value!r}"
        if kind in _WHAT:
            return f"`{path}` must be {_WHAT[kind]}, got {_type_name(value)}"
        return f"`{path}`: {error['msg']}"

    def _misspelled_key(self, parts: list) -> str | None:
        """An entry without its `engine`/`target`/`type`: if one of its keys is a misspelling of a known key
        (often the missing one), that is the mistake to report."""
        entry = self.raw
        for part in parts:
            entry = entry.get(part) if isinstance(entry, dict) else None
        kinds = self.sections.get(parts[0], {}) if len(parts) == 2 else {}
        if not isinstance(entry, dict) or not kinds:
            return None
        known = {key for cls in kinds.values() for key in cls.config_keys()}
        for key in entry:
            hint = did_you_mean(key, known) if key not in known else ""
            if hint:
                return f"unknown key `{_join([*parts, key])}`{hint}"
        return None

    def _number(self, loc: tuple, parts: list, value: Any) -> str:
        cls, _ = self.owner(loc, parts)
        field = cls.model_fields.get(parts[-1]) if cls and parts else None
        whole = "int" in str(field.annotation) and "float" not in str(field.annotation) if field else isinstance(value, int)
        return "a whole number" if whole else "a number"

    def _unknown_key(self, loc: tuple, parts: list) -> str:
        key, path = parts[-1], _join(parts)
        cls, named = self.owner(loc, parts)
        if cls is None:
            return f"unknown key `{path}`"
        keys = cls.config_keys()
        hint = _nested_home(cls, key) or did_you_mean(key, keys)
        if cls is self.top:
            return f"unknown top-level key `{key}`" + (hint or f" (expected one of {', '.join(sorted(keys))})")
        siblings = self.sections.get(parts[0], {})
        elsewhere = [kind for kind, other in siblings.items() if other is not cls and key in other.config_keys()]
        if elsewhere:
            return f"`{path}` is not an option of {named} (only of {', '.join(elsewhere)}){hint}"
        if hint:
            return f"unknown key `{path}`{f' for {named}' if named else ''}{hint}"
        return f"unknown key `{path}`{f' for {named}' if named else ''} (expected one of {', '.join(keys)})"


def _nested_home(cls: type[ConfigModel], key: str) -> str:
    """A key written one level too high (`max_requests` beside `budget:` rather than in it): where it belongs."""
    for name, field in cls.model_fields.items():
        for t in (*typing.get_args(field.annotation), field.annotation):
            if isinstance(t, type) and issubclass(t, ConfigModel) and key in t.config_keys():
                return f"; did you mean `{field.alias or name}.{key}`?"
    return ""


def project_error(exc: ValidationError, context: ErrorContext, file: str = PROJECT_FILE) -> ProjectError:
    """One line: the first problem (pydantic reports them in the file's order), and how many more there are."""
    # An unknown key first: a misspelled key also makes the real one "missing", and the misspelling is the news.
    errors = sorted(exc.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
    first = context.message(errors[0])
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    return ProjectError(f"{file}: {first}{more}")
