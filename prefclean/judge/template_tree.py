"""The templates a task renders and every one they include, import or extend: what a judge identity and a
cache key must both cover, walked once here so the two never disagree about which files count."""

from __future__ import annotations

from typing import Iterable, Iterator

import jinja2
import jinja2.meta


def template_sources(env: jinja2.Environment, names: Iterable[str]) -> Iterator[tuple[str, str, list | None]]:
    """(name, source, references) for each template once, breadth-first in a stable order. A template the
    loader lacks has the source '<missing>'; references is None when the source does not parse, and holds
    None for a template named only at render time (`{% include some_var %}`)."""
    todo, seen = list(names), set()
    while todo:
        name = todo.pop(0)
        if name in seen:
            continue
        seen.add(name)
        try:
            source = env.loader.get_source(env, name)[0]
        except jinja2.TemplateNotFound:
            source = "<missing>"
        try:
            references = list(jinja2.meta.find_referenced_templates(env.parse(source)))
        except jinja2.TemplateSyntaxError:
            references = None
        yield name, source, references
        todo.extend(sorted(n for n in references or [] if n))
