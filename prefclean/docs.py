"""dbt's docs blocks: `{% docs name %}...{% enddocs %}` in models/**/*.md (and seeds/), used by a property file's
`description: '{{ doc("name") }}'`. The description shown by `ls --output json`, the manifest and the dashboard
is the rendered text; an unknown doc name is an error naming it."""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import jinja2
import jinja2.sandbox

from .errors import ProjectError

_BLOCK = re.compile(r"\{%-?\s*docs\s+(?P<name>[^\s%]+)\s*-?%\}(?P<body>.*?)\{%-?\s*enddocs\s*-?%\}", re.S)
_OPEN = re.compile(r"\{%-?\s*docs\b")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def load_docs(root: Path, folders: list[Path]) -> dict[str, str]:
    """Every docs block under `folders`, name -> its text (stripped); a name defined twice is an error."""
    docs: dict[str, str] = {}
    where: dict[str, str] = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        for file in sorted(folder.rglob("*.md")):
            path = str(file.relative_to(root))
            text = file.read_text(encoding="utf-8")
            blocks = list(_BLOCK.finditer(text))
            if len(blocks) != len(_OPEN.findall(text)):
                raise ProjectError(f"{path}: a `{{% docs name %}}` block without its `{{% enddocs %}}`")
            for block in blocks:
                name = block.group("name")
                if not _NAME.fullmatch(name):
                    raise ProjectError(f"{path}: docs block name '{name}' is not a name (letters, digits, _)")
                if name in docs:
                    raise ProjectError(f"{path}: docs block '{name}' is also defined in {where[name]}")
                docs[name], where[name] = block.group("body").strip(), path
    return docs


_ENV = jinja2.sandbox.ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)


def render_description(text: str, docs: dict[str, str], where: str) -> str:
    """A description as dbt shows it: `{{ doc('name') }}` replaced by that block's text."""
    if "{{" not in text and "{%" not in text:
        return text

    def doc(name: str, *rest: str) -> str:
        if rest:  # dbt's doc('package', 'name')
            raise ProjectError(f"{where}: doc('{name}', '{rest[0]}'): packages are not supported by prefclean; "
                               f"use doc('{rest[0]}')")
        if name not in docs:
            close = difflib.get_close_matches(name, list(docs), n=1, cutoff=0.5)
            hint = f"; did you mean '{close[0]}'?" if close else (
                f" (known: {', '.join(sorted(docs))})" if docs else " (no {% docs %} blocks in models/*.md)")
            raise ProjectError(f"{where}: description uses doc('{name}'), which no docs block defines{hint}")
        return docs[name]

    try:
        return _ENV.from_string(text).render(doc=doc)
    except ProjectError:
        raise
    except jinja2.TemplateError as exc:
        raise ProjectError(f"{where}: description: {exc}") from None
