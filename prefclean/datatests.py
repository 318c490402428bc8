"""Data tests as dbt users know them.

Generic tests are declared in YAML files next to models (models/**/*.yml):

    models:
      - name: pair_decisions
        tests:                                   # model-level
          - expression: {expression: "chosen_rating between 1 and 5", severity: warn}
        columns:
          - name: pair_id
            tests: [not_null, unique]
          - name: decision
            tests:
              - accepted_values: {values: [keep, flip, drop]}

Singular tests are SQL files in `data_tests/` (kept apart from pytest's tests/) that select failing rows;
they belong to every model they ref(). A test passes when it finds no failing row. Severity `error`
(default) fails the model in `prefclean build`, so what depends on it is skipped; `warn` only reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import yaml

from .compiler import Compiler, Model
from .errors import ProjectError
from .warehouse import MODELS_SCHEMA, quote, relation

GENERIC = ("not_null", "unique", "accepted_values", "accepted_range", "relationships", "expression")


@dataclass
class DataTest:
    name: str
    model: str  # the model it runs after (for singular tests: the last of the models it refs)
    sql: str  # selects failing rows
    severity: str = "error"
    depends_on: set[str] = field(default_factory=set)
    path: str = ""


@dataclass
class TestResult:
    test: DataTest
    status: str  # pass | fail | warn | error
    failures: int = 0
    message: str = ""


def _generic_sql(kind: str, rel: str, column: str | None, args: dict, where: str) -> tuple[str, set[str]]:
    col = quote(column) if column else None
    filt = f" and ({where})" if where else ""
    if kind == "not_null":
        return f"select * from {rel} where {col} is null{filt}", set()
    if kind == "unique":
        return (f"select {col}, count(*) as n from {rel} where {col} is not null{filt} group by {col} having count(*) > 1",
                set())
    if kind == "accepted_values":
        values = args.get("values")
        if not isinstance(values, list) or not values:
            raise ValueError("accepted_values needs `values: [...]`")
        literals = ", ".join("'" + str(v).replace("'", "''") + "'" for v in values)
        return f"select * from {rel} where {col} is not null and {col}::varchar not in ({literals}){filt}", set()
    if kind == "accepted_range":
        conds = []
        if "min_value" in args:
            conds.append(f"{col} {'>=' if args.get('inclusive', True) else '>'} {args['min_value']}")
        if "max_value" in args:
            conds.append(f"{col} {'<=' if args.get('inclusive', True) else '<'} {args['max_value']}")
        if not conds:
            raise ValueError("accepted_range needs min_value and/or max_value")
        return f"select * from {rel} where {col} is not null and not ({' and '.join(conds)}){filt}", set()
    if kind == "relationships":
        to, field_ = args.get("to"), args.get("field")
        if not to or not field_:
            raise ValueError("relationships needs `to: ref('model')` (or a model name) and `field:`")
        target = to.strip()
        if target.startswith("ref("):
            target = target[4:].rstrip(")").strip().strip("'\"")
        return (f"select c.* from {rel} c where c.{col} is not null and c.{col} not in "
                f"(select {quote(field_)} from {relation(MODELS_SCHEMA, target)}){filt}",
                {target})
    if kind == "expression":
        expr = args.get("expression")
        if not expr:
            raise ValueError("expression needs `expression: <SQL that is true for good rows>`")
        return f"select * from {rel} where not coalesce(({expr}), false){filt}", set()
    raise ValueError(f"unknown test '{kind}' (one of {', '.join(GENERIC)})")


def _entries(tests) -> list[tuple[str, dict]]:
    out = []
    for t in tests or []:
        if isinstance(t, str):
            out.append((t, {}))
        elif isinstance(t, dict) and len(t) == 1:
            kind, args = next(iter(t.items()))
            if not isinstance(args or {}, dict):
                raise ValueError(f"the arguments of test {kind} must be a mapping, got {args!r}")
            out.append((kind, dict(args or {})))
        else:
            raise ValueError(f"a test must be a name or a one-key mapping, got {t!r}")
    return out


def load_tests(compiler: Compiler) -> list[DataTest]:
    project = compiler.project
    tests: list[DataTest] = []
    for path in sorted(project.models_dir.rglob("*.yml")) + sorted(project.models_dir.rglob("*.yaml")):
        rel_path = path.relative_to(project.root)
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            raise ProjectError(f"{rel_path}{f' line {mark.line + 1}' if mark else ''}: invalid YAML") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("models") or [], list):
            raise ProjectError(f"{rel_path}: expected `models:` followed by a list of models and their tests")
        for i, entry in enumerate(doc.get("models") or []):
            name = entry.get("name") if isinstance(entry, dict) else None
            if name not in compiler.models:
                raise ProjectError(f"{rel_path}: models[{i}] names unknown model '{name}'")
            rel = relation(MODELS_SCHEMA, name)
            try:
                specs = [(None, k, a) for k, a in _entries(entry.get("tests"))]
                for c, column in enumerate(entry.get("columns") or []):
                    if not isinstance(column, dict) or not column.get("name"):
                        raise ValueError(f"columns[{c}] needs `name:` (and `tests:`)")
                    specs += [(column.get("name"), k, a) for k, a in _entries(column.get("tests"))]
            except ValueError as exc:
                raise ProjectError(f"{rel_path}: model '{name}': {exc}") from None
            for column, kind, args in specs:
                args = dict(args)
                severity = str(args.pop("severity", "error")).lower()
                where = args.pop("where", "")
                if severity not in ("error", "warn"):
                    raise ProjectError(f"{rel_path}: test {kind} on {name}: severity must be error or warn")
                try:
                    sql, deps = _generic_sql(kind, rel, column, args, where)
                except ValueError as exc:
                    raise ProjectError(f"{rel_path}: model '{name}'{f' column {column}' if column else ''}: {exc}") from None
                test_name = args.pop("name", None) or f"{kind}_{name}" + (f"_{column}" if column else "")
                taken = {t.name for t in tests}
                base, k = test_name, 2
                while test_name in taken:
                    test_name, k = f"{base}_{k}", k + 1
                tests.append(DataTest(test_name, name, sql, severity, {name} | deps, str(rel_path)))
    singular_dir = project.root / "data_tests"
    for path in sorted(singular_dir.rglob("*.sql")) if singular_dir.exists() else []:
        model = Model(name=path.stem, path=path.relative_to(project.root), template=path.read_text(encoding="utf-8"))
        sql = compiler.render(model)
        if not model.refs:
            raise ProjectError(f"{model.path}: a data test must ref() at least one model")
        order = [n for n in compiler_order(compiler) if n in model.refs]
        severity = str(model.config.get("severity", "error")).lower()
        tests.append(DataTest(path.stem, order[-1], sql, severity, set(model.refs), str(model.path)))
    return tests


def compiler_order(compiler: Compiler) -> list[str]:
    from .graph import Graph

    return Graph({n: m.refs for n, m in compiler.models.items()}).order()


def run_test(con: duckdb.DuckDBPyConnection, test: DataTest) -> TestResult:
    try:
        # The newline ends a -- comment the test's SQL may finish with.
        failures = con.execute(f"select count(*) from ({test.sql}\n)").fetchall()[0][0]
    except duckdb.Error as exc:
        return TestResult(test, "error", message=" ".join(str(exc).split()))
    if failures == 0:
        return TestResult(test, "pass")
    return TestResult(test, "warn" if test.severity == "warn" else "fail", failures,
                      f"{failures} failing row{'s' if failures != 1 else ''}")
