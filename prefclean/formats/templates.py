"""`format_rows()` for models: a source staged through its format adapter, resolved when the model compiles.

    {{ config(materialized='table') }}
    {{ format_rows('pairs') }}

The format is the argument, else `sources.<name>.format`, else detected from the source's columns and
first rows (read through the same loader that stages it, on a scratch connection, so compiling never
depends on what the warehouse holds).
"""

from __future__ import annotations

import duckdb
import jinja2

from . import FormatError, get_format, originals_sql, staged_rows_sql
from .detect import candidates, describe, detect


def source_shape(project, source) -> tuple[dict[str, str], list[dict]]:
    """({column: type}, first rows) of a source as it will be staged (renames applied)."""
    from ..sources import LOADERS, _renamed

    con = duckdb.connect()
    try:
        sql, _ = LOADERS[source.type](con, source, project)
        return describe(con, _renamed(con, source, sql))
    except duckdb.Error as exc:
        raise FormatError(f"source '{source.name}': cannot read it to find its format: {str(exc).splitlines()[0]}") from None
    finally:
        con.close()


def resolve_format(project, source, fmt: str | None = None, kind: str | None = None):
    """(Format, columns) of a source: named, configured, or detected."""
    columns, rows = source_shape(project, source)
    named = fmt or getattr(source, "format", None)
    if not named:
        return get_format(detect(columns, rows, kind, where=f"source '{source.name}'")), columns
    chosen = get_format(named)
    if not chosen.matches(columns, rows):  # a named format that does not fit: say so now, not as a SQL error
        fits = candidates(columns, rows)
        seen = ", ".join(f"{c} {t}" for c, t in columns.items())
        raise FormatError(f"source '{source.name}' is set to format '{named}' ({chosen.description}), but it has "
                          f"columns {seen}" + (f"; it looks like '{fits[0]}'" if fits else ""))
    return chosen, columns


def _resolved(context, source_name: str, format: str | None, kind: str | None):
    source = context["source"]  # the model's source(): records the dependency, gives the relation
    relation = source(source_name)
    compiler = source.__self__.compiler
    cache = compiler.__dict__.setdefault("_format_shapes", {})  # one look at the files per compile
    key = (source_name, format, kind)
    if key not in cache:
        cache[key] = resolve_format(compiler.project, compiler.project.sources[source_name], format, kind)
    return relation, *cache[key]


@jinja2.pass_context
def format_rows(context, source_name: str, format: str | None = None, kind: str | None = None,
                original: bool = False) -> str:
    """SQL: every row of the source in the staged shape, with `excluded_reason` for rows that do not fit
    (`original=true`: with the source row as a STRUCT too)."""
    relation, fmt, columns = _resolved(context, source_name, format, kind)
    return staged_rows_sql(relation, fmt, columns, original=original)


@jinja2.pass_context
def format_originals(context, source_name: str) -> str:
    """A relation of every source row as it was read: `source_row` (numbered as format_rows() numbers them)
    and `original` (the row as a STRUCT), for writing rows back in their own format."""
    return f"({originals_sql(context['source'](source_name))})"


@jinja2.pass_context
def format_swap(context, source_name: str, format: str | None = None, kind: str | None = None) -> list:
    """The source columns a flip exchanges, as [[a, b], ...] (to write rows back in their own format)."""
    _, fmt, _ = _resolved(context, source_name, format, kind)
    return [list(pair) for pair in fmt.swap]


@jinja2.pass_context
def format_kind(context, source_name: str, format: str | None = None, kind: str | None = None) -> str:
    """'dpo' or 'sft': what the source's format holds."""
    _, fmt, _ = _resolved(context, source_name, format, kind)
    return fmt.kind


# Reader options that read_json_objects takes as read_json does; any other option (columns, records, ...) may
# change what a row is, so the lines are not used and rows are written from their values instead.
_LINE_OPTIONS = {"format", "compression"}


def source_lines_sql(project, source) -> str | None:
    """SQL of a JSON-lines source's rows as their original text (`source_row`, `line`: the line as the file
    holds it, without its trailing whitespace), numbered as the staged rows are; None when the source is not
    one JSON object per line read with plain options (its rows are then written back from their values)."""
    from ..sources import _matching_files, _options_sql

    options = dict(getattr(source, "options", {}) or {})
    if source.type != "jsonl" or set(options) - _LINE_OPTIONS or options.get("format", "newline_delimited") != \
            "newline_delimited":
        return None
    files = "[" + ", ".join("'" + str(f.resolve()).replace("'", "''") + "'" for f in _matching_files(source, project)) + "]"
    options["format"] = "newline_delimited"
    return f"select row_number() over () as source_row, json::varchar as line from read_json_objects({files}{_options_sql(options)})"


def _checked_lines(lines_sql: str, relation: str, source_name: str) -> str:
    """The lines, failing the query (never writing a row's line for another row) when the file no longer holds
    as many objects as the staged source has rows."""
    message = (f"source '{source_name}': its file no longer has as many JSON lines as the staged rows; "
               "rebuild to stage it again")
    return (f"select * from ({lines_sql}) where case when (select count(*) from ({lines_sql})) = "
            f"(select count(*) from {relation}) then true else error('{message.replace(chr(39), chr(39) * 2)}') end")


@jinja2.pass_context
def format_lines(context, source_name: str) -> str:
    """A relation of a JSON-lines source's rows as their original text (`source_row`, `line`), for writing
    kept rows back byte for byte; '' when the source is not JSON lines (see source_lines_sql)."""
    relation = context["source"](source_name)  # records the dependency
    compiler = context["source"].__self__.compiler
    sql = source_lines_sql(compiler.project, compiler.project.sources[source_name])
    return f"({_checked_lines(sql, relation, source_name)})" if sql else ""


@jinja2.pass_context
def format_flipped_line(context, source_name: str, line_sql: str, format: str | None = None,
                        kind: str | None = None) -> str:
    """SQL: the JSON text of a flipped row: the line's keys in their order, the values of each swapped pair of
    keys exchanged (the keys as the file names them, before `columns:` renames). Values are written as DuckDB
    reads them, so a flipped row is equal in value, not always in bytes (1.50 becomes 1.5)."""
    _, fmt, _ = _resolved(context, source_name, format, kind)
    renamed = {new: old for old, new in (context["source"].__self__.compiler.project.sources[source_name].columns
                                         or {}).items()}
    cases = []
    for a, b in fmt.swap:
        a, b = renamed.get(a, a), renamed.get(b, b)
        cases += [f"when {_sql_string(a)} then {_sql_string(b)}", f"when {_sql_string(b)} then {_sql_string(a)}"]
    if not cases:
        return line_sql
    path = "'$.\"' || replace(replace({k}, '\\\\', '\\\\\\\\'), '\"', '\\\\\"') || '\"'"
    source_key = f"(case k {' '.join(cases)} else k end)"
    return (f"to_json(map(json_keys({line_sql}), list_transform(json_keys({line_sql}), "
            f"lambda k: json_extract({line_sql}, {path.format(k=source_key)}))))::varchar")


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
