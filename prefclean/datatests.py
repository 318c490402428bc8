"""Data tests as dbt users know them.

Generic tests are declared in property files next to models (see properties.py): the built-in `not_null`,
`unique`, `accepted_values`, `accepted_range`, `relationships` and `expression`, or a project's own
`{% test name(model, column_name) %}` blocks (in macros/ or tests/generic/; one named like a built-in
replaces it). Singular tests are SQL files in `data_tests/` or `tests/` that select failing rows; they belong
to every model they ref().

A test's failures are `count(*)` of its rows (or its `fail_calc`); with dbt's defaults (`error_if: "!=0"`,
`warn_if: "!=0"`) any failing row fails it. `severity: error` (the default) fails the model in
`prefclean build`, so what depends on it is skipped; `warn` only reports. `store_failures: true` keeps the
failing rows in `main_dbt_test__audit.<test name>` (or its `alias`; its `schema` config and the project's
generate_schema_name decide the schema, as in dbt).
"""

from __future__ import annotations

import re
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import duckdb

from . import relnames
from .compiler import Compiler, Model
from .errors import CompileError, PrefcleanError, ProjectError
from .properties import TEST_CONFIG_KEYS, TestSpec
from .unittests import load_unit_tests
from .warehouse import MODELS_SCHEMA, quote, relation, swap_in_table, swap_in_view

GENERIC = ("not_null", "unique", "accepted_values", "accepted_range", "relationships", "expression")
ARGUMENTS = {"not_null": (), "unique": (), "accepted_values": ("values", "quote"),
             "accepted_range": ("min_value", "max_value", "inclusive"), "relationships": ("to", "field"),
             "expression": ("expression",)}
_THRESHOLD = re.compile(r"^\s*(==|=|!=|<>|>=|<=|>|<)\s*(-?\d+(?:\.\d+)?)\s*$")


@dataclass
class DataTest:
    name: str
    model: str  # the model it runs after (for singular tests: the last of the models it refs)
    sql: str  # selects failing rows
    severity: str = "error"
    depends_on: set[str] = field(default_factory=set)
    path: str = ""
    error_if: str = "!=0"
    warn_if: str = "!=0"
    fail_calc: str = "count(*)"
    limit: int | None = None
    store_failures: bool = False
    store_failures_as: str = "table"
    alias: str | None = None
    failures_schema: str = ""  # where store_failures keeps failing rows (relnames.failures_schema)
    tags: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    unit_of: str | None = None  # a unit test of this model: runs before it builds, on given rows
    # A unit test's: makes its SQL when it runs (that needs its inputs' column types). A ClassVar, so not a
    # field: the artifacts are made of the fields.
    prepare: ClassVar[Callable[[duckdb.DuckDBPyConnection], str] | None] = None


@dataclass
class TestResult:
    test: DataTest
    status: str  # pass | fail | warn | error
    failures: int = 0
    message: str = ""


def _builtin_sql(kind: str, rel: str, col: str | None, args: dict) -> str:
    if kind in ("not_null", "unique", "accepted_values", "accepted_range") and col is None:
        raise ValueError(f"{kind} is a column test: put it under a column, or give it `column_name:`")
    if kind == "not_null":
        return f"select * from {rel} where {col} is null"
    if kind == "unique":
        return f"select {col} as unique_field, count(*) as n_records from {rel} where {col} is not null group by {col} having count(*) > 1"
    if kind == "accepted_values":
        values = args.get("values")
        if not isinstance(values, list) or not values:
            raise ValueError("accepted_values needs `values: [...]`")
        literals = (", ".join("'" + str(v).replace("'", "''") + "'" for v in values) if args.get("quote", True)
                    else ", ".join(str(v) for v in values))
        cast = "::varchar" if args.get("quote", True) else ""
        return f"select * from {rel} where {col} is not null and {col}{cast} not in ({literals})"
    if kind == "accepted_range":
        conds = []
        if "min_value" in args:
            conds.append(f"{col} {'>=' if args.get('inclusive', True) else '>'} {args['min_value']}")
        if "max_value" in args:
            conds.append(f"{col} {'<=' if args.get('inclusive', True) else '<'} {args['max_value']}")
        if not conds:
            raise ValueError("accepted_range needs min_value and/or max_value")
        return f"select * from {rel} where {col} is not null and not ({' and '.join(conds)})"
    if kind == "relationships":
        to, field_ = args.get("to"), args.get("field")
        if not to or not field_:
            raise ValueError("relationships needs `to: ref('model')` (or a model name) and `field:`")
        if col is None:
            raise ValueError("relationships is a column test: put it under a column, or give it `column_name:`")
        # A join, not `not in`: one NULL among the parents' keys would make `not in` find nothing.
        return (f"with child as (select {col} as from_field from {rel} where {col} is not null), "
                f"parent as (select {quote(field_)} as to_field from {to}) "
                "select from_field from child left join parent on from_field = to_field where to_field is null")
    expr = args.get("expression")
    if not expr:
        raise ValueError("expression needs `expression: <SQL that is true for good rows>`")
    return f"select * from {rel} where not coalesce(({expr}), false)"


def _check_threshold(value: Any, key: str) -> str:
    text = str(value)
    if not _THRESHOLD.match(text):
        raise ValueError(f"`{key}: {text}` should be a comparison with a number, such as '>10' or '!=0'")
    return text


def _apply_config(test: DataTest, config: dict, where: str) -> DataTest | None:
    """Fill a test's settings from its config; None when `enabled: false`."""
    try:
        if config.get("enabled", True) is False:
            return None
        test.severity = str(config.get("severity", "error")).lower()
        if test.severity not in ("error", "warn"):
            raise ValueError("severity must be error or warn")
        test.error_if = _check_threshold(config.get("error_if", "!=0"), "error_if")
        test.warn_if = _check_threshold(config.get("warn_if", "!=0"), "warn_if")
        test.fail_calc = str(config.get("fail_calc", "count(*)"))
        limit = config.get("limit")
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
            raise ValueError(f"`limit: {limit}` should be a whole number of rows")
        test.limit = limit
        test.store_failures = bool(config.get("store_failures", False))
        test.store_failures_as = str(config.get("store_failures_as", "table"))
        if test.store_failures_as not in ("table", "view"):
            raise ValueError(f"`store_failures_as: {test.store_failures_as}` should be table or view "
                             "(`ephemeral` is not supported by prefclean)")
        if "store_failures_as" in config:
            test.store_failures = True
        test.alias = config.get("alias")
        tags = config.get("tags") or []
        test.tags = [tags] if isinstance(tags, str) else list(tags)
        test.meta = dict(config.get("meta") or {})
    except ValueError as exc:
        raise ProjectError(f"{where}: {exc}") from None
    return test


class _TestLoader:
    def __init__(self, compiler: Compiler):
        self.compiler, self.project = compiler, compiler.project
        self.tests: list[DataTest] = []

    def unique_name(self, name: str) -> str:
        taken = {t.name for t in self.tests}
        base, k = name, 2
        while name in taken:
            name, k = f"{base}_{k}", k + 1
        return name

    def resolve(self, value: Any, owner: Model) -> Any:
        """dbt renders test arguments: `ref('m')`, `source('s')` and `{{ ... }}` in strings become SQL."""
        if isinstance(value, list):
            return [self.resolve(v, owner) for v in value]
        if isinstance(value, dict):
            return {k: self.resolve(v, owner) for k, v in value.items()}
        if not isinstance(value, str):
            return value
        text = value.strip()
        if re.match(r"^(ref|source)\s*\(.*\)$", text, re.S):
            text = "{{ " + text + " }}"
        elif "{{" not in value and "{%" not in value:
            return value
        return self.compiler.render_fragment(text, owner)

    def generic(self, spec: TestSpec) -> None:
        where = f"{spec.path}: test {spec.kind} on model '{spec.model}'" + (f" column {spec.column}" if spec.column else "")
        owner = Model(name=f"test {spec.kind}", path=spec.path, template="", resource_type="test")
        owner.refs.add(spec.model)
        try:
            args = self.resolve(spec.arguments, owner)
            config = self.resolve(spec.config, owner)
        except CompileError as exc:
            raise ProjectError(f"{where}: {exc}") from None
        rel = self.compiler.models[spec.model].relation if spec.model in self.compiler.models else \
            relation(MODELS_SCHEMA, spec.model)
        if config.get("where"):
            rel = f"(select * from {rel} where {config['where']}) dbt_subquery"
        column_name = args.pop("column_name", None)
        col = column_name if column_name is not None else (quote(spec.column) if spec.column else None)
        macro = self.compiler.generic_tests.get(spec.kind)
        try:
            if macro is not None:  # a project's {% test %} block (it may replace a built-in)
                kwargs = {"model": rel, **({"column_name": col} if col is not None else {}), **args}
                sql = self.compiler.call_test_macro(macro, kwargs, owner)
            elif spec.kind in GENERIC:
                for key in args:
                    if key not in ARGUMENTS[spec.kind]:
                        raise ValueError(f"{spec.kind} takes no argument `{key}`"
                                         f" (it takes: {', '.join(ARGUMENTS[spec.kind]) or 'none'})")
                if spec.kind == "relationships" and isinstance(args.get("to"), str) and args["to"] in self.compiler.models:
                    owner.refs.add(args["to"])  # `to: parents`, a bare model name
                    args["to"] = self.compiler.models[args["to"]].relation
                sql = _builtin_sql(spec.kind, rel, col, args)
            else:
                raise ValueError(self._unknown_kind(spec.kind))
        except (ValueError, CompileError) as exc:
            raise ProjectError(f"{where}: {exc}") from None
        name = spec.name or f"{spec.kind}_{spec.model}" + (f"_{spec.column}" if spec.column else "")
        test = DataTest(self.unique_name(name), spec.model, sql, depends_on=set(owner.refs), path=spec.path)
        if _apply_config(test, config, where) is not None:
            self.tests.append(self._placed(test, config, where))

    def _placed(self, test: DataTest, config: dict, where: str) -> DataTest:
        if test.store_failures:
            node = Model(name=test.name, path=Path(test.path), template="", resource_type="test", config=config)
            try:
                test.failures_schema = relnames.failures_schema(self.compiler.namespace, node, where)
            except CompileError as exc:
                raise ProjectError(str(exc)) from None
        return test

    def _unknown_kind(self, kind: str) -> str:
        known = sorted(set(GENERIC) | set(self.compiler.generic_tests))
        if "." in kind:
            return (f"`{kind}`: tests from packages are not supported by prefclean; write it as a "
                    f"{{% test {kind.split('.')[-1]}(model, column_name) %}} block in macros/ or tests/generic/"
                    + (" (or use `expression`)" if kind.endswith("expression_is_true") else ""))
        import difflib

        close = difflib.get_close_matches(kind, known, n=1, cutoff=0.6)
        return f"unknown test '{kind}'" + (f"; did you mean '{close[0]}'?" if close else f" (one of {', '.join(known)})")

    def singular(self) -> None:
        root = self.project.root
        files = sorted((root / "data_tests").rglob("*.sql")) + sorted(
            p for p in (root / "tests").rglob("*.sql") if "generic" not in p.relative_to(root / "tests").parts[:1])
        for path in files:
            if not path.is_file():
                continue
            model = Model(name=path.stem, path=path.relative_to(root), template=path.read_text(encoding="utf-8"),
                          resource_type="test")
            sql = self.compiler.render(model)
            if not model.refs:
                raise ProjectError(f"{model.path}: a data test must ref() at least one model")
            config = {k: v for k, v in model.config.items() if k != "materialized"}
            for key in config:
                if key == "where":
                    raise ProjectError(f"{model.path}: `where` applies to generic tests only; filter in the test's SQL")
                if key not in TEST_CONFIG_KEYS:
                    raise ProjectError(f"{model.path}: config(`{key}`) is not a test config (known: {', '.join(TEST_CONFIG_KEYS)})")
            order = [n for n in compiler_order(self.compiler) if n in model.refs]
            if path.stem in {t.name for t in self.tests}:
                raise ProjectError(f"{model.path}: a test named '{path.stem}' already exists; rename the file")
            test = DataTest(path.stem, order[-1], sql, depends_on=set(model.refs), path=str(model.path))
            if _apply_config(test, config, str(model.path)) is not None:
                self.tests.append(self._placed(test, config, str(model.path)))


def load_tests(compiler: Compiler) -> list[DataTest]:
    loader = _TestLoader(compiler)
    for spec in compiler.properties.tests:
        if spec.model not in compiler.disabled:  # a disabled model's tests are disabled with it, as in dbt
            loader.generic(spec)
    loader.singular()
    for unit in load_unit_tests(compiler, {t.name for t in loader.tests}):
        tags = unit.spec.config.get("tags") or []
        test = DataTest(unit.spec.name, unit.spec.model, "", depends_on={unit.spec.model}, path=unit.spec.path,
                        unit_of=unit.spec.model, tags=[tags] if isinstance(tags, str) else list(tags),
                        meta=dict(unit.spec.config.get("meta") or {}))
        test.prepare = unit.sql
        loader.tests.append(test)
    return loader.tests


def compiler_order(compiler: Compiler) -> list[str]:
    from .graph import Graph

    return Graph({n: m.refs for n, m in compiler.models.items()}).order()


def _holds(failures: float, condition: str) -> bool:
    op, number = _THRESHOLD.match(condition).groups()
    n = float(number)
    return {"==": failures == n, "=": failures == n, "!=": failures != n, "<>": failures != n, ">=": failures >= n,
            "<=": failures <= n, ">": failures > n, "<": failures < n}[op]


def store_failures(con: duckdb.DuckDBPyConnection, test: DataTest, sql: str) -> str:
    con.execute(f"create schema if not exists {quote(test.failures_schema)}")
    name = test.alias or test.name
    select = f"select * from ({sql}\n)" + (f" limit {test.limit}" if test.limit is not None else "")
    (swap_in_view if test.store_failures_as == "view" else swap_in_table)(con, test.failures_schema, name, select)
    return relation(test.failures_schema, name)


def _examples(con: duckdb.DuckDBPyConnection, sql: str) -> str:
    """A unit test's first differences, for its one-line message."""
    cursor = con.execute(f"select * from ({sql}\n) limit 3")
    names = [d[0] for d in cursor.description]
    rows = cursor.fetchall()
    return "; ".join(f"{r[0]}: " + ", ".join(f"{n}={v!r}" for n, v in zip(names[1:], r[1:])) for r in rows)


def run_test(con: duckdb.DuckDBPyConnection, test: DataTest) -> TestResult:
    try:
        sql = test.prepare(con) if test.prepare is not None else test.sql  # a unit test's SQL needs its inputs' types
    except PrefcleanError as exc:
        return TestResult(test, "error", message=str(exc))
    except duckdb.Error as exc:
        return TestResult(test, "error", message=" ".join(str(exc).split()))
    rows = f"({sql}\n)" if test.limit is None else f"(select * from ({sql}\n) limit {test.limit})"
    try:
        # The newline ends a -- comment the test's SQL may finish with.
        value = con.execute(f"select {test.fail_calc} from {rows} dbt_internal_test").fetchall()[0][0]
        stored = store_failures(con, test, sql) if test.store_failures else ""
        examples = _examples(con, sql) if test.unit_of and value else ""
    except duckdb.Error as exc:
        return TestResult(test, "error", message=" ".join(str(exc).split()))
    failures = value or 0
    where = f"; stored in {stored}" if stored and failures else ""
    count = int(failures) if float(failures).is_integer() else failures
    noun = "differing row" if test.unit_of else "failing row"
    message = f"{count} {noun}{'s' if count != 1 else ''}{where}" + (f" ({examples})" if examples else "")
    if test.severity == "error" and _holds(failures, test.error_if):
        return TestResult(test, "fail", count, message)
    if _holds(failures, test.warn_if):
        return TestResult(test, "warn", count, message)
    return TestResult(test, "pass", count, message if failures else "")


def select_tests(tests: list[DataTest], graph: Any, select: tuple[str, ...], exclude: tuple[str, ...]) -> list[DataTest]:
    """The tests `prefclean test -s ...` runs: those of the selected models, and (as in dbt) those whose own
    tags a `tag:` selector names, even where no model has that tag."""
    import fnmatch

    words = [w for s in select for w in s.split()]
    tagged: list[DataTest] = []
    model_words = []
    model_tags = {tag for m in (graph.models or {}).values() for tag in modelconfig_tags(m)}
    for word in words:
        match = re.fullmatch(r"tag:([^,+@\s]+)", word)
        hits = [t for t in tests if match and any(fnmatch.fnmatchcase(tag, match.group(1)) for tag in t.tags)]
        tagged += hits
        if not hits or any(fnmatch.fnmatchcase(tag, match.group(1)) for tag in model_tags):
            model_words.append(word)
    chosen = set(graph.select(model_words, exclude=exclude)) if model_words or not words else set()
    excluded = set(graph.select(list(exclude))) if exclude else set()
    return [t for t in tests if t.depends_on & chosen or (t in tagged and not t.depends_on & excluded)]


def modelconfig_tags(model: Any) -> list[str]:
    tags = model.config.get("tags") or []
    return [tags] if isinstance(tags, str) else [str(t) for t in tags]
