"""The `contextual-targeting` command (Typer): thin commands over the plain functions of this package."""

# No `from __future__ import annotations` here: Typer reads the parameter annotations at run time.

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import boto3
import typer
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
)
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table

from contextual_targeting.cli import stack_outputs as keys
from contextual_targeting.cli.cleanup import Cleaner, plan_cleanup
from contextual_targeting.cli.dead_letters import Redriver, receive_all, release, waiting
from contextual_targeting.cli.executions import ExecutionView, execution_arn, latest_execution
from contextual_targeting.cli.schedule import (
    DISABLED,
    ENABLED,
    ScheduleRow,
    delete_schedule,
    schedule_rows,
    set_state,
)
from contextual_targeting.cli.schedule import to_json as schedules_to_json
from contextual_targeting.cli.segments import (
    SegmentRow,
    customer_profiles_statuses,
    list_segments,
    pinpoint_statuses,
    profiles_summary,
    to_json,
)
from contextual_targeting.cli.stack_outputs import (
    DEFAULT_STACK_NAME,
    CliError,
    StackOutputs,
    load_stack_outputs,
)
from contextual_targeting.cli.upload import (
    PlannedUpload,
    find_started_execution,
    now,
    plan_uploads,
    plan_without_stack,
    upload_files,
)
from contextual_targeting.cli.validation import LocalFile, display, find_data, upload_order, validate
from contextual_targeting.cli.watch import DEFAULT_INTERVAL, Machines, Watcher, WatchState

app = typer.Typer(
    name="contextual-targeting",
    help="Upload training data, watch the runs, list the segments and clean up Personalize resources.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(highlight=False, soft_wrap=True)
errors = Console(stderr=True, highlight=False, soft_wrap=True)

# Seams for the tests: the commands wait through these.
SLEEP: Callable[[float], None] = time.sleep
CLOCK: Callable[[], float] = time.monotonic
NOW: Callable[[], datetime] = now

StackName = Annotated[
    str,
    typer.Option(
        "--stack-name", help="Name of the deployed CloudFormation stack.", envvar="CONTEXTUAL_TARGETING_STACK"
    ),
]
Region = Annotated[
    str | None, typer.Option("--region", help="AWS region (default: AWS_REGION or the profile's region).")
]
ProfileOption = Annotated[
    str | None, typer.Option("--profile", help="Named AWS profile (default: AWS_PROFILE or the default one).")
]


class Aws:
    """A boto3 session for the chosen profile and region, and the stack's outputs."""

    def __init__(self, *, stack_name: str, region: str | None, profile: str | None) -> None:
        self.stack_name = stack_name
        self.session = boto3.Session(profile_name=profile, region_name=region)
        if not self.session.region_name:
            raise CliError("no AWS region: pass --region or set AWS_REGION (or a region in your profile)")
        self.region: str = self.session.region_name
        self._outputs: StackOutputs | None = None

    def client(self, service: str) -> Any:
        """A client of the session's region."""
        # boto3-stubs type `client` per literal service name; the commands treat clients as Any.
        session: Any = self.session
        return session.client(service, region_name=self.region)

    @property
    def outputs(self) -> StackOutputs:
        """The stack's outputs (read once)."""
        if self._outputs is None:
            self._outputs = load_stack_outputs(self.client("cloudformation"), self.stack_name, self.region)
        return self._outputs


def explain(err: Exception) -> str | None:
    """The one line an expected failure is reported as; None for an unexpected one."""
    if isinstance(err, CliError):
        return str(err)
    if isinstance(err, (NoCredentialsError, PartialCredentialsError)):
        return "no AWS credentials found: run `aws configure`, set AWS_PROFILE, or pass --profile"
    if isinstance(err, ProfileNotFound):
        return f"{err}: check --profile / AWS_PROFILE against ~/.aws/config"
    if isinstance(err, NoRegionError):
        return "no AWS region: pass --region or set AWS_REGION"
    if isinstance(err, EndpointConnectionError):
        return f"cannot reach AWS: {err}"
    if isinstance(err, ClientError):
        error = err.response.get("Error", {})
        return f"AWS refused {err.operation_name}: {error.get('Code')}: {error.get('Message')}"
    return None


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Every expected failure becomes one line on stderr and exit code 1."""
    try:
        yield
    except (CliError, BotoCoreError, ClientError) as err:
        message = explain(err)
        if message is None:
            raise
        _fail(message)


def _fail(message: str) -> None:
    errors.print(f"error: {message}", markup=False)
    raise typer.Exit(1)


# ---------------------------------------------------------------------------------------------------------
# upload


class RichProgress:
    """One progress bar per uploaded file."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, Any] = {}

    def start(self, item: PlannedUpload) -> Callable[[int], None]:
        """Add the file's bar; the returned callback advances it by the bytes sent."""
        task = self.progress.add_task(item.file.key, total=item.size)
        self.tasks[item.file.key] = task
        return lambda sent: self.progress.advance(task, sent)

    def finish(self, item: PlannedUpload) -> None:
        """Mark the file complete (empty files never call back)."""
        self.progress.update(self.tasks[item.file.key], completed=item.size)


def _bucket_for(outputs: StackOutputs) -> Callable[[LocalFile], str]:
    def bucket(file: LocalFile) -> str:
        if file.kind == "endpoints":
            return outputs.segment_import_bucket or ""
        return outputs.personalize_bucket

    return bucket


@app.command()
def upload(
    data_dir: Annotated[
        Path, typer.Argument(help="Folder with personalize/train, personalize/batch and pinpoint/.")
    ] = Path("data"),
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and list, upload nothing.")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Upload unchanged files too (starts a new run).")
    ] = False,
    stack_name: StackName = DEFAULT_STACK_NAME,
    region: Region = None,
    profile: ProfileOption = None,
) -> None:
    """Validate the data locally, then upload it; the training config goes last and starts a run."""
    with one_line_errors():
        data, found_errors = find_data(data_dir)
        found_errors += validate(data)
        if found_errors:
            for line in found_errors:
                errors.print(line, markup=False)
            raise CliError(f"{len(found_errors)} problem(s) in {display(data_dir)}: nothing uploaded")
        console.print(f"valid: {', '.join(display(g.config.path) for g in data.groups)}", markup=False)

        try:
            aws = Aws(stack_name=stack_name, region=region, profile=profile)
            outputs = aws.outputs
        except (CliError, BotoCoreError, ClientError) as err:
            reason = explain(err)
            if not dry_run or reason is None:
                raise
            # A dry run works offline: the plan names the buckets as unknown and compares nothing with S3.
            console.print(f"bucket unknown ({reason}): every file is listed as new", markup=False)
            _print_plan(plan_without_stack(upload_order(data, with_endpoints=True)), dry_run=True)
            return
        with_endpoints = outputs.segment_import_bucket is not None
        if data.endpoints and not with_endpoints:
            console.print("skipping pinpoint/*.csv: the stack has no Pinpoint destination", markup=False)
        s3 = aws.client("s3")
        plan = plan_uploads(
            s3, upload_order(data, with_endpoints=with_endpoints), _bucket_for(outputs), force=force
        )
        _print_plan(plan, dry_run=dry_run)
        if dry_run:
            return
        started = NOW()
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=console,
        ) as bars:
            versions = upload_files(s3, plan, RichProgress(bars))
        configs = [p for p in plan if p.file.kind == "config" and not p.unchanged]
        if not configs:
            console.print("the training configs are unchanged: no run started (--force uploads them again)")
            return
        machine = outputs.get(keys.TRAINING_STATE_MACHINE)
        for item in configs:
            if machine is None:
                console.print(f"uploaded {item.uri}: the training run starts now", markup=False)
                continue
            console.print(f"waiting for the training run of {item.file.key} ...", markup=False)
            arn = find_started_execution(
                aws.client("stepfunctions"),
                machine,
                config_key=item.file.key,
                version_id=versions.get(item.file.key),
                since=started,
                sleep=SLEEP,
                clock=CLOCK,
            )
            if arn is None:
                raise CliError(
                    f"no training run started for {item.file.key} within a minute: check the stack's "
                    "EventBridge rule, or run `contextual-targeting watch` later"
                )
            console.print(f"training run started: {arn}", markup=False)
            console.print(f"follow it: contextual-targeting watch {arn.rsplit(':', 1)[-1]}", markup=False)


def _print_plan(plan: list[PlannedUpload], *, dry_run: bool) -> None:
    """One line per file (plain lines, not a table: paths and URIs stay whole and greppable)."""
    console.print("Would upload:" if dry_run else "Uploading:")
    for item in plan:
        action = "unchanged" if item.unchanged else "upload"
        note = (
            " (only with the Pinpoint destination)"
            if item.bucket_unknown and item.file.kind == "endpoints"
            else ""
        )
        console.print(
            f"  {action:<9} {display(item.file.path)} -> {item.uri} ({item.size:,} B){note}", markup=False
        )


# ---------------------------------------------------------------------------------------------------------
# watch


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _execution_table(label: str, view: ExecutionView) -> Table:
    table = Table(title=f"{label}: {view.name} {view.status}", title_justify="left")
    table.add_column("step")
    table.add_column("runs", justify="right")
    table.add_column("elapsed", justify="right")
    table.add_column("")
    for step in view.steps:
        table.add_row(step.name, str(step.runs), _duration(step.elapsed), "running" if step.running else "")
    return table


def _personalize_table(view: ExecutionView) -> Table:
    table = Table(title="Personalize", title_justify="left")
    table.add_column("resource")
    table.add_column("name")
    table.add_column("status")
    for status in view.personalize:
        table.add_row(status.resource, status.arn.rsplit("/", 1)[-1], status.status)
    return table


def render_state(state: WatchState) -> RenderableType:
    """The live view: every execution's steps and the Personalize resources' statuses."""
    parts: list[RenderableType] = [_execution_table(label, view) for label, view in state.views()]
    if state.training.personalize:
        parts.insert(1, _personalize_table(state.training))
    if state.waiting_for and not state.done:
        parts.append("waiting for: " + ", ".join(state.waiting_for))
    return Group(*parts)


class LineLog:
    """Without a terminal (CI, pipes): one line per step entered and per status change."""

    def __init__(self, out: Console) -> None:
        self.out = out
        self.seen: set[tuple[str, ...]] = set()

    def update(self, state: WatchState) -> None:
        """Print what is new since the last look."""
        for label, view in state.views():
            self._line(("run", view.arn, view.status), f"{label} {view.name}: {view.status}")
            for step in view.steps:
                self._line(("step", view.arn, step.name), f"  {label} > {step.name}")
        for status in state.training.personalize:
            self._line(
                ("personalize", status.arn, status.status),
                f"  Personalize {status.resource} {status.arn.rsplit('/', 1)[-1]}: {status.status}",
            )
        if state.done:
            for label, view in state.views():
                self.out.print(f"{label} {view.name}: time per step", markup=False)
                for step in view.steps:
                    runs = f" ({step.runs} runs)" if step.runs > 1 else ""
                    self.out.print(f"  {_duration(step.elapsed):>8}  {step.name}{runs}", markup=False)

    def _line(self, key: tuple[str, ...], text: str) -> None:
        if key not in self.seen:
            self.seen.add(key)
            self.out.print(text, markup=False)


def _print_result(state: WatchState) -> None:
    """One line per query: segment name, users, query (plain lines: names stay whole for copying), and
    what Customer Profiles made of it."""
    for manifest in state.manifests.values():
        console.print(f"Segments of {manifest.get('JobName', '')}:", markup=False)
        for entry in manifest.get("Segments", []):
            status = str(entry.get("Status", ""))
            name = entry.get("SegmentName") or entry.get("Error") or ""
            users = int(entry.get("UserCount") or 0)
            console.print(f"  {status:<6} {name}  {users:,} users  {entry.get('Query') or ''}", markup=False)
            upload = state.uploads.get(str(entry.get("SegmentName")))
            if upload is not None and upload.finished:
                console.print(f"         Customer Profiles: {profiles_summary(upload)}", markup=False)


@app.command()
def watch(
    execution: Annotated[
        str | None, typer.Argument(help="Training execution ARN or name (default: the latest run).")
    ] = None,
    interval: Annotated[
        float, typer.Option("--interval", help="Seconds between two looks.", min=1)
    ] = DEFAULT_INTERVAL,
    stack_name: StackName = DEFAULT_STACK_NAME,
    region: Region = None,
    profile: ProfileOption = None,
) -> None:
    """Follow a training run and the post-processing and import runs it leads to, to the segments."""
    with one_line_errors():
        aws = Aws(stack_name=stack_name, region=region, profile=profile)
        outputs = aws.outputs
        machines = Machines(
            training=outputs.require(keys.TRAINING_STATE_MACHINE),
            postprocessing=outputs.get(keys.POSTPROCESSOR_STATE_MACHINE),
            pinpoint_prepare=outputs.get(keys.PINPOINT_PREPARE_STATE_MACHINE),
            pinpoint_import=outputs.get(keys.PINPOINT_IMPORT_STATE_MACHINE),
            customer_profiles=outputs.get(keys.CUSTOMER_PROFILES_STATE_MACHINE),
        )
        _warn_dead_letters(aws)
        sfn = aws.client("stepfunctions")
        arn = (
            execution_arn(machines.training, execution)
            if execution
            else latest_execution(sfn, machines.training)
        )
        watcher = Watcher(sfn, aws.client("s3"), machines, arn, now=NOW)
        try:
            if console.is_terminal:
                with Live(console=console, auto_refresh=False) as live:
                    state = watcher.run(
                        interval=interval,
                        sleep=SLEEP,
                        on_update=lambda s: live.update(render_state(s), refresh=True),
                    )
            else:
                state = watcher.run(interval=interval, sleep=SLEEP, on_update=LineLog(console).update)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") == "ExecutionDoesNotExist":
                raise CliError(f"no training run {execution} in {aws.region}") from None
            raise
        _print_result(state)
        if state.failure:
            raise CliError(state.failure)
        if state.training.output.get("Status") == "SKIPPED":
            last = state.training.output.get("Detail", {}).get("LastSuccessfulRun", "")
            console.print(
                f"training run {state.training.name}: no new data since {last}, nothing trained", markup=False
            )
            return
        console.print(f"training run {state.training.name} succeeded", markup=False)


def _warn_dead_letters(aws: Aws) -> None:
    """Say so when EventBridge could not deliver events: a run may be waiting for one of them."""
    queue_url = aws.outputs.get(keys.DEAD_LETTER_QUEUE_URL)
    if not queue_url:
        return
    try:
        count = waiting(aws.client("sqs"), queue_url)
    except ClientError:
        return  # no permission to look: `watch` itself still works
    if count:
        errors.print(
            f"warning: {count} event(s) EventBridge could not deliver wait in the dead-letter queue: "
            "see `contextual-targeting dead-letters`",
            markup=False,
        )


# ---------------------------------------------------------------------------------------------------------
# dead-letters


@app.command("dead-letters")
def dead_letters(
    redrive: Annotated[
        bool, typer.Option("--redrive", help="Deliver them again (after fixing the cause), then delete them.")
    ] = False,
    stack_name: StackName = DEFAULT_STACK_NAME,
    region: Region = None,
    profile: ProfileOption = None,
) -> None:
    """List the events EventBridge could not deliver; with --redrive, deliver each once more."""
    with one_line_errors():
        aws = Aws(stack_name=stack_name, region=region, profile=profile)
        queue_url = aws.outputs.require(keys.DEAD_LETTER_QUEUE_URL)
        sqs = aws.client("sqs")
        letters = receive_all(sqs, queue_url)
        if not letters:
            console.print("no dead letters: every event was delivered", markup=False)
            return
        for letter in letters:
            console.print(letter.describe(), markup=False)
        if not redrive:
            release(sqs, queue_url, letters)
            console.print(
                f"{len(letters)} dead letter(s); fix the cause, then run with --redrive", markup=False
            )
            return
        result = Redriver(
            sqs=sqs,
            events=aws.client("events"),
            sfn=aws.client("stepfunctions"),
            sns=aws.client("sns"),
            queue_url=queue_url,
        ).redrive(letters)
        console.print(f"redriven: {len(result.redriven)}", markup=False)
        for letter, reason in result.left:
            errors.print(f"left in the queue: {letter.message_id}: {reason}", markup=False)
        if result.left:
            raise CliError(f"{len(result.left)} dead letter(s) left in the queue")


# ---------------------------------------------------------------------------------------------------------
# segments


def _segments_table(rows: list[SegmentRow], *, pinpoint: bool) -> Table:
    table = Table(title="Segments", title_justify="left")
    columns = ["dataset group", "job", "query", "status", "segment", "users", "file"]
    if pinpoint:
        columns += ["endpoints", "import"]
    for column in columns:
        table.add_column(column, justify="right" if column in ("users", "endpoints") else "left")
    for row in rows:
        cells = [
            row.dataset_group,
            row.job,
            row.query,
            row.status if not row.error else f"{row.status}: {row.error}",
            row.segment or "",
            f"{row.users:,}",
            row.file or "",
        ]
        if pinpoint:
            cells += ["" if row.endpoints is None else f"{row.endpoints:,}", row.import_status or ""]
        table.add_row(*cells)
    return table


def _profiles_table(rows: list[SegmentRow]) -> Table:
    """Per segment, what its Customer Profiles upload run reported."""
    table = Table(title="Customer Profiles", title_justify="left")
    for column in ("segment", "definition", "upload", "members", "uploaded", "failed", "without contact"):
        right = column in ("members", "uploaded", "failed", "without contact")
        table.add_column(column, justify="right" if right else "left", overflow="fold")
    for row in rows:
        if not row.segment:
            continue  # a failed or empty query has no segment to upload
        counts = (row.profiles_members, row.profiles_uploaded, row.profiles_failed, row.users_without_contact)
        table.add_row(
            row.segment,
            row.profiles_definition or "",
            row.profiles_status or "no upload run",
            *("" if value is None else f"{value:,}" for value in counts),
        )
    return table


@app.command()
def segments(
    dataset_group: Annotated[
        str | None, typer.Option("--dataset-group", help="Only this dataset group's segments.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    stack_name: StackName = DEFAULT_STACK_NAME,
    region: Region = None,
    profile: ProfileOption = None,
) -> None:
    """List the produced segments: query, file, users, and what the destinations made of them."""
    with one_line_errors():
        aws = Aws(stack_name=stack_name, region=region, profile=profile)
        outputs = aws.outputs
        prepare = outputs.get(keys.PINPOINT_PREPARE_STATE_MACHINE)
        imports = outputs.get(keys.PINPOINT_IMPORT_STATE_MACHINE)
        uploads = outputs.get(keys.CUSTOMER_PROFILES_STATE_MACHINE)
        pinpoint = (
            pinpoint_statuses(
                aws.client("stepfunctions"), prepare_machine=prepare, import_machine=imports, now=NOW()
            )
            if prepare or imports
            else None
        )
        profiles = (
            customer_profiles_statuses(aws.client("stepfunctions"), uploads, now=NOW()) if uploads else None
        )
        rows = list_segments(
            aws.client("s3"),
            outputs.personalize_bucket,
            dataset_group=dataset_group,
            pinpoint=pinpoint,
            profiles=profiles,
        )
        if as_json:
            typer.echo(to_json(rows))
        elif not rows:
            console.print("no segments yet: upload data and watch the run (contextual-targeting watch)")
        else:
            console.print(_segments_table(rows, pinpoint=bool(prepare or imports)))
            if uploads:
                console.print(_profiles_table(rows))


# ---------------------------------------------------------------------------------------------------------
# schedule


def _schedules_table(rows: list[ScheduleRow]) -> Table:
    table = Table(title="Training schedules", title_justify="left")
    for column in ("dataset group", "schedule", "time zone", "state", "next run", "last run"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row.dataset_group,
            row.expression,
            row.timezone,
            row.state,
            row.next_run or ("paused" if row.state == DISABLED else ""),
            row.last_run or "",
        )
    return table


@app.command()
def schedule(
    dataset_group: Annotated[
        str | None, typer.Argument(help="The dataset group to pause or resume (default: list them all).")
    ] = None,
    pause: Annotated[bool, typer.Option("--pause", help="Stop the schedule from starting runs.")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Let a paused schedule start runs again.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    stack_name: StackName = DEFAULT_STACK_NAME,
    region: Region = None,
    profile: ProfileOption = None,
) -> None:
    """List the dataset groups' retraining schedules (next run, last run), or pause or resume one."""
    with one_line_errors():
        if pause and resume:
            raise CliError("--pause or --resume, not both")
        if (pause or resume) and not dataset_group:
            raise CliError("name the dataset group to pause or resume")
        aws = Aws(stack_name=stack_name, region=region, profile=profile)
        group = aws.outputs.require(keys.TRAINING_SCHEDULE_GROUP)
        scheduler = aws.client("scheduler")
        if pause or resume:
            assert dataset_group is not None
            state = DISABLED if pause else ENABLED
            changed = set_state(scheduler, group, dataset_group, state)
            verb = "paused" if pause else "resumed"
            console.print(
                f"schedule of {dataset_group} {verb}"
                if changed
                else f"schedule of {dataset_group} was {verb}",
                markup=False,
            )
            return
        machine = aws.outputs.get(keys.TRAINING_STATE_MACHINE)
        rows = schedule_rows(
            scheduler,
            aws.client("stepfunctions") if machine else None,
            group_name=group,
            machine=machine,
            now=NOW(),
        )
        if dataset_group:
            rows = [r for r in rows if r.dataset_group == dataset_group]
        if as_json:
            typer.echo(schedules_to_json(rows))
        elif not rows:
            console.print(
                'no schedules: add a "schedule" block to a training config and upload it', markup=False
            )
        else:
            console.print(_schedules_table(rows))


# ---------------------------------------------------------------------------------------------------------
# cleanup


def _schedule_group(aws: Aws) -> str | None:
    """The stack's schedule group, or None (no stack any more, or a stack from before schedules)."""
    try:
        return aws.outputs.get(keys.TRAINING_SCHEDULE_GROUP)
    except CliError:
        return None


@app.command()
def cleanup(
    dataset_group: Annotated[str, typer.Argument(help="Name of the dataset group to delete.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be deleted, delete nothing.")
    ] = False,
    purge_data: Annotated[
        bool, typer.Option("--purge-data", help="Also delete train/, batch/ and segments/ data of the group.")
    ] = False,
    stack_name: StackName = DEFAULT_STACK_NAME,
    region: Region = None,
    profile: ProfileOption = None,
) -> None:
    """Delete the dataset group's Personalize resources in dependency order (S3 data stays by default)."""
    with one_line_errors():
        aws = Aws(stack_name=stack_name, region=region, profile=profile)
        personalize = aws.client("personalize")
        plan = plan_cleanup(personalize, dataset_group, purge_data=purge_data)
        bucket = aws.outputs.personalize_bucket if purge_data else None
        console.print(
            f"{'Would' if dry_run else 'Will'} clean up dataset group {dataset_group}:", markup=False
        )
        for line in plan.lines(bucket):
            console.print(f"  {line}", markup=False)
        # A schedule left behind would recreate the dataset group at its next run, and bill the training.
        schedules = _schedule_group(aws)
        if schedules:
            console.print(f"  retraining schedule {dataset_group}, if there is one", markup=False)
        for blocker in plan.blockers:
            errors.print(f"  blocked: {blocker}", markup=False)
        if dry_run:
            return
        if plan.blockers:
            raise CliError(
                "cannot clean up yet: a job is running that Personalize cannot stop; try again later"
            )
        if not yes and not typer.confirm("Delete these resources?", default=False):
            raise CliError("cancelled: nothing deleted")
        if schedules and delete_schedule(aws.client("scheduler"), schedules, dataset_group):
            console.print(f"retraining schedule {dataset_group} deleted", markup=False)
        Cleaner(
            personalize, sleep=SLEEP, clock=CLOCK, report=lambda text: console.print(text, markup=False)
        ).run(plan, s3=aws.client("s3") if purge_data else None, bucket=bucket)
        console.print(f"dataset group {dataset_group} cleaned up", markup=False)


# ---------------------------------------------------------------------------------------------------------
# demo


@app.command()
def demo(
    data_dir: Annotated[
        Path,
        typer.Option("--data", help="Folder laid out like data/ (personalize/train, personalize/batch)."),
    ] = Path("data"),
    output: Annotated[
        Path, typer.Option("--out", help="Where the segments, events, emails and traces go.")
    ] = Path("demo-output"),
) -> None:
    """Run the default stack's workflows end to end on this machine, with local stand-ins for AWS."""
    from contextual_targeting.cli import demo as local_demo

    with one_line_errors():
        local_demo.run(console, errors, data_dir, output)
