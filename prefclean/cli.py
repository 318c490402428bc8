"""The `prefclean` command: thin wrappers around the Python API."""

from __future__ import annotations

import functools
import os
import sys
import traceback
from pathlib import Path

import click

from . import __version__, blas, processgc
from .errors import EXIT_FAILED, EXIT_INTERNAL, PrefcleanError
from .project import load_project, parse_vars


def _echo(line: str) -> None:
    click.echo(line)


def common_options(fn):
    """--project-dir, --vars and --debug on every command, as dbt users expect."""

    @click.option("--project-dir", default=".", show_default=True, type=click.Path(file_okay=False),
                  help="Folder holding prefclean.yml.")
    @click.option("--vars", "vars_text", default=None, help="""Override vars: '{"seed": 7}' (JSON or YAML).""")
    @click.option("--debug", is_flag=True, help="Show tracebacks.")
    @functools.wraps(fn)
    def wrapper(project_dir, vars_text, debug, **kwargs):
        try:
            load = lambda: load_project(project_dir, parse_vars(vars_text))  # noqa: E731
            code = fn(load=load, **kwargs)
        except PrefcleanError as exc:
            if debug:
                traceback.print_exc()
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.secho("interrupted: finished work is kept; run the command again to continue", fg="yellow", err=True)
            sys.exit(130)
        except click.exceptions.Exit:
            raise
        except BrokenPipeError:  # the reader went away (`prefclean plan | head -1`): stop quietly, as cat does
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # so the flush at exit does not raise again
            sys.exit(141)  # 128 + SIGPIPE, what a shell reports for a writer its reader left
        except Exception as exc:  # a bug: say so, keep the traceback for --debug
            if debug:
                traceback.print_exc()
            from .warehouse import damaged_file_error

            damaged = damaged_file_error(exc)  # a file cut short under DuckDB: the user's file, not a bug
            if damaged is not None:
                click.secho(f"error: {damaged}", fg="red", err=True)
                sys.exit(damaged.exit_code)
            click.secho(f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", fg="red", err=True)
            sys.exit(EXIT_INTERNAL)
        sys.exit(code or 0)

    return wrapper


class _Main(click.Group):
    """The `prefclean` group. Called itself (by the console script or `python -m prefclean.cli`), it runs the
    process's one command: see processgc and blas. Tests invoke `main.main(...)` in-process and keep Python's
    defaults."""

    def __call__(self, *args, **kwargs):
        blas.one_thread_for_this_process()
        return processgc.run_as_process(lambda: super(_Main, self).__call__(*args, **kwargs))


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="prefclean")
def main():
    """Clean LLM preference datasets with an LLM judge: a dbt-like pipeline of SQL models in DuckDB."""


@main.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--name", default=None, help="Project name (default: the folder name).")
@click.option("--from", "from_", default=None, metavar="FILE_OR_HUB_ID",
              help="Your dataset (JSONL, JSON, Parquet, CSV or a Hugging Face dataset id), read in place.")
@click.option("--format", "fmt", default=None, help="Its format, when detection should not decide (see prefclean/formats).")
@click.option("--kind", type=click.Choice(["dpo", "sft"]), default=None, help="Preference pairs or SFT rows.")
def init(directory, name, from_, fmt, kind):
    """Scaffold a new working project in DIRECTORY (with --from: over your dataset, in its own format)."""
    from .scaffold import scaffold, scaffold_from

    try:
        if from_ is None:
            if fmt or kind:
                raise PrefcleanError("--format and --kind need --from FILE_OR_HUB_ID")
            created = scaffold(Path(directory), name)
        else:
            made = scaffold_from(Path(directory), from_, fmt=fmt, kind=kind, name=name)
            created = made.root
            click.echo(f"format: {made.format} ({'named' if fmt else 'detected'}, {made.kind}): {made.description}")
            click.echo("columns: " + ", ".join(f"{c} {t}" for c, t in made.columns.items()))
            click.echo(f"preference pairs built from the rated completions, in TRL's conversational format: "
                       f"{made.cleaned_path}" if made.kind == "completions"
                       else f"cleaned rows, in the same format: {made.cleaned_path}")
    except PrefcleanError as exc:
        click.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(exc.exit_code)
    click.echo(f"created project '{created.name}' in {created}")
    click.echo(f"next: cd {directory} && prefclean build")


def select_options(what: str):
    """-s/--select, --exclude, --state and --target, the same on every command that picks models."""

    def decorate(fn):
        @click.option("--target", "target_name", default=None, metavar="NAME",
                      help="dbt's target: prefclean has one, 'dev' (the warehouse in prefclean.yml); another is an error.")
        @click.option("--state", default=None, type=click.Path(file_okay=False), metavar="DIR",
                      help="A previous run's target/ folder (or a copy): its manifest.json answers state:new and "
                      "state:modified selectors.")
        @click.option("--exclude", multiple=True, help=f"Leave out these {what} (same syntax as --select).")
        @click.option("-s", "--select", multiple=True, help=f"{what.capitalize()} (dbt syntax: name, +name, 2+name, "
                      "@name, tag:x, path:p, config.materialized:table, state:modified+; space: or, comma: and).")
        @functools.wraps(fn)
        def wrapper(*args, target_name, **kwargs):
            from .context import check_target

            try:
                check_target(target_name)
            except PrefcleanError as exc:  # before the project loads (outside common_options' handler)
                click.secho(f"error: {exc}", fg="red", err=True)
                sys.exit(exc.exit_code)
            return fn(*args, **kwargs)

        return wrapper

    return decorate


def threads_option(fn):
    return click.option("--threads", type=click.IntRange(min=1), default=None, metavar="N",
                        help="DuckDB's threads for each query (models still build one at a time, in one connection; "
                        "judge requests in flight are the judge's concurrency). Default: DuckDB's, one per core.")(fn)


def _reporter():
    from .reporter import TerminalReporter

    return TerminalReporter(_echo)


def _releasing_gc(report):
    """The reporter, resuming garbage collection when the first model starts (processgc)."""
    from .events import ModelStarted

    def reporter(event) -> None:
        if isinstance(event, ModelStarted):
            processgc.release()
        report(event)

    return reporter


@main.command()
def schema():
    """Print the JSON Schema of prefclean.yml, for editors: prefclean schema > prefclean.schema.json"""
    from .config import schema_text

    click.echo(schema_text(), nl=False)


@main.command()
@select_options("models to compile")
@common_options
def compile(load, select, exclude, state):
    """Render the models to SQL in target/compiled/."""
    from . import api

    project = load()
    for model in api.compile(project, select=select, exclude=exclude, state=state):
        click.echo(f"compiled {project.shown(project.target_dir / 'compiled' / model.path)}")


@main.command(name="ls")
@select_options("models to list")
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: one JSON object a line (as dbt's), with descriptions from property files and docs blocks.")
@common_options
def ls_(load, select, exclude, state, output):
    """List models in run order with materialization and dependencies."""
    import json

    from . import api

    for m in api.compile(load(), select=select, exclude=exclude, write=False, state=state):
        if output == "json":
            click.echo(json.dumps(m.listing(), default=str))
            continue
        deps = ", ".join(sorted(m.refs) + [f"source:{s}" for s in sorted(m.sources)])
        click.echo(f"{m.name:<28} {m.materialized:<12} {deps}")


@main.command()
@select_options("models to build")
@click.option("--full-refresh", is_flag=True, help="Rebuild incremental models and re-stage sources from scratch.")
@click.option("--judge", default=None, help="Use this named judge for every judge() call in this run.")
@click.option("--refresh-judgments", is_flag=True, help="Ignore the judgment cache (results are still stored).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default=None, help="Where judge batches run.")
@click.option("--ray-address", default=None, help="With --executor ray: the cluster (ray://host:10001 or host:6379).")
@click.option("--no-exports", is_flag=True, help="Skip the exports declared in prefclean.yml.")
@click.option("--no-tests", is_flag=True, help="Skip data tests.")
@click.option("--fail-fast", "-x", is_flag=True, help="Stop at the first failed model or error-severity test.")
@click.option("--max-cost", type=click.FloatRange(min=0), default=None,
              help="USD every judge together may spend in this build (at their `price`); then nothing more is sent.")
@threads_option
@click.option("--no-wait", is_flag=True, help="Batch judges submit and return; the next build collects.")
@common_options
def build(load, select, exclude, state, threads, full_refresh, judge, refresh_judgments, executor, ray_address,
          no_exports, no_tests, fail_fast, max_cost, no_wait):
    """Stage sources, build models in order with their data tests, then run exports."""
    from . import api

    processgc.hold()  # until the first model starts (see processgc)
    try:
        result = api.build(load(), select=select, exclude=exclude, full_refresh=full_refresh, judge=judge,
                           refresh_judgments=refresh_judgments, executor=executor, ray_address=ray_address,
                           tests=not no_tests, exports=not no_exports, fail_fast=fail_fast, max_cost=max_cost,
                           state=state, threads=threads, wait=not no_wait, reporter=_releasing_gc(_reporter()))
    finally:
        processgc.release()
    return 0 if result.ok else EXIT_FAILED


@main.command()
@select_options("models whose judge calls are planned")
@click.option("--full-refresh", is_flag=True, help="Plan a --full-refresh build (incremental models from scratch).")
@click.option("--judge", default=None, help="Plan with this named judge for every judge() call.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option("--max-cost", type=click.FloatRange(min=0), default=None, metavar="USD",
              help="Try a build's --max-cost: how many requests fit in this many USD, and which judge it stops.")
@click.option("--refresh-judgments", is_flag=True, help="Plan a --refresh-judgments build (the cache not consulted).")
@common_options
def plan(load, select, exclude, state, full_refresh, judge, as_json, max_cost, refresh_judgments):
    """What a build would ask the judges (requests, tokens, cost, time), sending no request."""
    import json

    from . import api

    result = api.plan(load(), select=select, exclude=exclude, judge=judge, full_refresh=full_refresh,
                      state=state, max_cost=max_cost, refresh_judgments=refresh_judgments)
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
    else:
        for line in result.lines():
            click.echo(line)
    return EXIT_FAILED if result.errors else 0  # a model the plan could not run would fail the build too


@main.command()
@select_options("seeds to load")
@threads_option
@common_options
def seed(load, select, exclude, state, threads):
    """Load seeds/*.csv into the warehouse as tables (`prefclean build` loads them too)."""
    from . import api

    project = load()
    if not any((project.root / "seeds").rglob("*.csv")):
        click.echo("no seeds: put CSV files in seeds/")
        return 0
    result = api.seed(project, select=select, exclude=exclude, state=state, threads=threads, reporter=_reporter())
    return 0 if result.ok else EXIT_FAILED


@main.command(name="test")
@select_options("models whose tests run")
@common_options
def test_(load, select, exclude, state):
    """Run the data tests (models/*.yml and data_tests/*.sql) against the warehouse."""
    from . import api

    result = api.test(load(), select=select, exclude=exclude, state=state, reporter=_reporter())
    return 0 if result.ok else EXIT_FAILED


@main.command()
@click.argument("names", nargs=-1)
@click.option("--review", type=click.Choice(["all", "uncertain"]), default=None,
              help="Argilla exports: all pairs, or the --budget most uncertain ones not sent yet.")
@click.option("--budget", type=click.IntRange(min=0), default=None,
              help="Argilla exports with --review uncertain: how many new uncertain pairs to send.")
@click.option("--calibration", type=click.IntRange(min=0), default=None,
              help="Argilla exports: the size of the random calibration sample (judge suggestions hidden).")
@click.option("--min-submitted", type=click.IntRange(min=1), default=None,
              help="Argilla exports: submitted reviews each record needs (Argilla's task distribution).")
@common_options
def export(load, names, review, budget, calibration, min_submitted):
    """Run the exports declared in prefclean.yml (all, or the NAMES given)."""
    from . import api

    result = api.export(load(), names, reporter=_reporter(), review=review, budget=budget, calibration=calibration,
                        min_submitted=min_submitted)
    return 0 if result.ok else EXIT_FAILED


@main.group()
def batch():
    """Provider batches (engine openai-batch): requests for offline runners, and their results."""


@batch.command(name="export")
@select_options("models whose batch judges' requests to write")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The requests JSONL to write (one {custom_id, method, url, body} per line).")
@click.option("--judge", default=None, help="Use this named judge for every judge() call.")
@common_options
def batch_export(load, select, exclude, state, output, judge):
    """Write the requests the judgment cache cannot answer, for offline runners (vllm run-batch)."""
    from . import api

    lines = api.batch_export(load(), output, select=select, exclude=exclude, state=state, judge=judge,
                             reporter=_reporter())
    click.echo(f"wrote {lines} requests to {output}; run them, then `prefclean batch import RESULTS.jsonl`")


@batch.command(name="import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@common_options
def batch_import(load, file):
    """Read a batch output file (OpenAI's format) into the judgment cache; the next build uses it."""
    from . import api

    imported = api.batch_import(load(), file)
    click.echo(f"{imported.line()}; `prefclean build` uses them")


@main.group()
def pull():
    """Bring human labels back into the warehouse."""


@pull.command(name="argilla")
@click.argument("name")
@common_options
def pull_argilla(load, name):
    """Load every Argilla review of export NAME (submitted, draft, discarded) into the table human.reviews."""
    from . import api

    counts = api.pull_argilla(load(), name)
    others = ", ".join(f"{n} {status}" for status, n in counts.items() if status != "submitted" and n)
    click.echo(f"pulled {counts['submitted']} submitted reviews{f' (and {others})' if others else ''} into "
               "human.reviews; `prefclean build` applies the submitted ones")


@main.command()
@click.option("--model", default="pair_decisions", show_default=True, help="The audit model holding the judge's verdicts.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the bootstrap confidence interval.")
@common_options
def calibrate(load, model, seed):
    """Measure the judge against the human reviews pulled by `prefclean pull argilla`; writes summary.json."""
    from . import api
    from .calibration_format import format_report

    for line in format_report(api.calibrate(load(), model=model, seed=seed)):
        click.echo(line)


@main.command()
@click.option("--check/--no-check", default=True, help="Try to reach each judge.")
@common_options
def judges(load, check):
    """List the judges in prefclean.yml: engine, model and whether each is reachable."""
    from . import api

    found = api.judges(load(), check=check)
    for j in found:
        click.echo(f"{j.name:<16} {j.engine:<13} {j.model:<44} {j.status}")
    return 0 if all(j.ok for j in found) else EXIT_FAILED


@main.command()
@click.argument("query", required=False)
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "markdown"]), default="table",
              show_default=True, help="How to print results.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write results to a .parquet, .csv or .jsonl file instead of printing.")
@click.option("--write", is_flag=True, help="Open the warehouse read-write (default: read-only).")
@common_options
def sql(load, query, fmt, output, write):
    """Run SQL against the warehouse; with no QUERY, open an interactive prompt."""
    from .sqlshell import format_table, interactive, open_connection, render_query, run_query, write_output

    project = load()
    con = open_connection(project, write=write)
    try:
        if query is None:
            interactive(project, con, fmt, _echo)
            return 0
        table = run_query(con, render_query(project, query, con=con))
        if output:
            click.echo(write_output(table, Path(output)))
        else:
            click.echo(format_table(table, fmt))
    finally:
        con.close()
    return 0


@main.command()
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535), help="Port (0: any free one).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to bind; anything but loopback requires the token printed at start.")
@click.option("--query-timeout", default=30.0, show_default=True, type=float, help="SQL box time limit, in seconds.")
@common_options
def dashboard(load, port, host, query_timeout):
    """Serve a read-only web dashboard over the warehouse (overview, charts, pairs, lineage, SQL)."""
    from .dashboard import serve

    serve(load(), host=host, port=port, echo=_echo, query_timeout=query_timeout)
    return 0


if __name__ == "__main__":  # pragma: no cover
    main()
