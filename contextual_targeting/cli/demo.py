"""`demo`: run the default stack's workflows on this machine and print what they produced (no AWS account)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from contextual_targeting.cli.stack_outputs import CliError
from contextual_targeting.cli.validation import display, personalize_root

DEMO_INTRO = (
    "Local demo of the default stack: its synthesized workflows run in the local Step Functions interpreter "
    "the tests use, with their real Lambda code. Amazon Personalize, S3, EventBridge, SNS and Customer "
    "Profiles are local stand-ins: no AWS account, no network. Times are virtual: waits take their AWS "
    "durations without passing."
)
TABLE_CAPTION = (
    "Users ranked by the local Personalize stand-in (item-attribute affinity score), not a trained model"
)


def synthesized_default_stack() -> Any:
    """The default stack, synthesized here (a seam for the tests, which pass theirs)."""
    from contextual_targeting.local.synth import build_stack, synthesized_stack

    return synthesized_stack(build_stack())


def run(console: Console, errors: Console, data_dir: Path, output: Path) -> None:
    """The whole command: synthesize, run, print the runs as they end, then the segment table."""
    try:
        import moto  # noqa: F401 - only checking that the demo's S3 stand-in is installed
    except ImportError:
        raise CliError(
            "the demo needs moto: run `make setup` (or pip install -r requirements-dev.txt)"
        ) from None
    from contextual_targeting.local.demo import Run, run_demo
    from contextual_targeting.local.demo_output import DemoError
    from contextual_targeting.local.harness import HarnessError
    from contextual_targeting.local.lambdas import NoStandInError

    started = time.monotonic()
    console.print(DEMO_INTRO, markup=False)
    console.print("Synthesizing the stack (default configuration) ...", markup=False)
    stack = synthesized_default_stack()
    console.print(f"  done in {time.monotonic() - started:.1f} s", markup=False)
    console.print(f"Running the workflows on {display(personalize_root(data_dir))}:", markup=False)
    console.print(f"  {'starts at':>10}  {'takes':>8}  {'status':<10} workflow (execution)", markup=False)
    first: list[float] = []

    def progress(run: Run) -> None:
        if not first:
            first.append(run.start)
        execution = run.execution
        assert execution is not None
        when, takes = _clock(run.start - first[0]), _clock(execution.virtual_seconds)
        console.print(
            f"  {'+' + when:>10}  {takes:>8}  {execution.status:<10} {run.workflow}"
            f" ({run.name[:12]}, {execution.transitions} transitions)",
            markup=False,
        )

    try:
        result = run_demo(stack, data_dir, output, progress=progress)
    except (DemoError, NoStandInError, HarnessError) as err:
        raise CliError(str(err)) from None
    if not result.succeeded:
        errors.print("The demo stopped:", markup=False)
        for failure in result.failures:
            errors.print(f"  {failure}", markup=False)
        raise CliError(f"nothing written to {display(output)}")
    console.print(segment_table(result))
    if result.not_run_locally:
        console.print(
            "Events also reached these rule targets, which the demo does not run: "
            + ", ".join(result.not_run_locally),
            markup=False,
        )
    console.print(
        f"Written to {display(output)}/: segments/ and the job output as the pipeline writes them, "
        "events.jsonl, emails.jsonl, customer-profiles/ (members), traces/ (one per execution), "
        "logs/ (what the Lambdas logged, if anything), summary.json",
        markup=False,
    )
    console.print(f"Done in {time.monotonic() - started:.1f} s (the workflows: {result.wall_seconds:.1f} s).")


def segment_table(result: Any) -> Table:
    """Query, segment, users, users without contact data: one row per query of every job."""
    table = Table(title="Demo segments", title_justify="left", caption=TABLE_CAPTION, caption_justify="left")
    # Names stay whole in a narrow terminal or a pipe: folded onto the next line, never cut.
    table.add_column("query", overflow="fold")
    table.add_column("segment", overflow="fold")
    table.add_column("users", justify="right")
    table.add_column("users without contact data", justify="right")
    for row in result.rows:
        report = result.contacts.get(row.segment or "")
        missing = report.get("UsersWithoutContact") if report else None
        segment = row.segment or f"{row.status}: {row.error or ''}"
        table.add_row(row.query, segment, f"{row.users:,}", "-" if missing is None else f"{int(missing):,}")
    return table


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"
