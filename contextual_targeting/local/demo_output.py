"""What `contextual-targeting demo` leaves in its output folder: the segment files and job output under
their bucket keys, the events and emails, the Customer Profiles members, one trace per execution, a summary.
The folder is written whole or not at all, and only replaces an earlier demo's output.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from contextual_targeting.contracts.events import EVENT_SOURCE
from contextual_targeting.contracts.layout import BATCH_PREFIX, SEGMENTS_PREFIX
from contextual_targeting.local.personalize import HALF_LIFE_DAYS
from contextual_targeting.local.personalize import STAND_IN as PERSONALIZE_STAND_IN
from contextual_targeting.local.profiles import STAND_IN as PROFILES_STAND_IN
from contextual_targeting.local.scheduler import STAND_IN as SCHEDULER_STAND_IN
from contextual_targeting.local.synth import logical_words

if TYPE_CHECKING:
    from contextual_targeting.local.demo import DemoResult, LocalPipeline, Run

OUTPUT_MARKER = "# contextual-targeting local demo output"
STAND_INS = {
    "Amazon Personalize": PERSONALIZE_STAND_IN,
    "Amazon S3": "local stand-in for Amazon S3 (moto, in memory)",
    "Amazon EventBridge": "the stack's own rules, matched locally",
    "Amazon SNS": "emails kept in emails.jsonl, not sent",
    "Amazon Connect Customer Profiles": PROFILES_STAND_IN,
    "Amazon EventBridge Scheduler": SCHEDULER_STAND_IN,
    "AWS Step Functions": "the synthesized definitions, run by aws-local-stepfunctions on a virtual clock",
}
_OUTPUT_KEY = re.compile(r"^[^/\\][^\\]*$")


class DemoError(Exception):
    """The demo cannot run (no data, an output folder it must not replace, a missing tool)."""


def check_output(output: Path) -> None:
    """Refuse to replace a folder that is not an earlier demo's output."""
    if output.exists() and (not output.is_dir() or (any(output.iterdir()) and not _is_demo_output(output))):
        raise DemoError(f"{output} exists and is not a demo output folder: choose another --out")


def _is_demo_output(folder: Path) -> bool:
    readme = folder / "README.md"
    return readme.is_file() and readme.read_text(encoding="utf-8").startswith(OUTPUT_MARKER)


def write_output(pipeline: LocalPipeline, result: DemoResult, output: Path) -> Path:
    """Write everything into a fresh folder next to `output`, then swap it in: whole or not at all."""
    output = output.resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        _write_files(pipeline, result, staging)
        if output.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{output.name}.old.", dir=output.parent))
            output.rename(retired / output.name)
            staging.rename(output)
            shutil.rmtree(retired)
        else:
            staging.rename(output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return output


def _write_files(pipeline: LocalPipeline, result: DemoResult, folder: Path) -> None:
    s3 = pipeline.s3
    for prefix in (SEGMENTS_PREFIX, BATCH_PREFIX):
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=pipeline.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                key = str(obj["Key"])
                if prefix == BATCH_PREFIX and not key.endswith(".out"):
                    continue  # the query files are the user's own
                body = s3.get_object(Bucket=pipeline.bucket, Key=key)["Body"].read()
                _safe_path(folder, key).write_bytes(body)
    _write_jsonl(
        folder / "events.jsonl",
        (
            {
                "time": e["event"]["time"],
                "bus": e["bus"],
                "workflow": e["workflow"],
                "execution": e["execution"],
                "source": e["event"]["source"],
                "detail-type": e["event"]["detail-type"],
                "detail": e["event"]["detail"],
                **({"notRunLocally": e["not_run_locally"]} if e["not_run_locally"] else {}),
            }
            for e in pipeline.events
            if e["event"]["source"] == EVENT_SOURCE
        ),
    )
    _write_jsonl(folder / "emails.jsonl", pipeline.emails)
    profiles = folder / "customer-profiles"
    profiles.mkdir()
    definitions = []
    for name, definition in sorted(pipeline.profiles.definitions.items()):
        members = pipeline.profiles.members(name)
        lines = ["UserId,Email,Phone"] + [
            _csv_row([p.get("AccountNumber", ""), p.get("EmailAddress", ""), p.get("PhoneNumber", "")])
            for p in members
        ]
        _safe_path(profiles, f"{name}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
        definitions.append(
            {
                "SegmentDefinitionName": name,
                "SegmentDefinitionArn": definition.arn,
                "DisplayName": definition.display_name,
                "Attribute": definition.attribute,
                "Members": len(members),
                "File": f"customer-profiles/{name}.csv",
            }
        )
    _write_json(
        profiles / "segment-definitions.json", {"StandIn": PROFILES_STAND_IN, "Definitions": definitions}
    )
    logs = folder / "logs"
    for function in pipeline.lambdas.functions.values():
        if function.log.getvalue():
            _safe_path(logs, f"{function.name}.log").write_text(function.log.getvalue(), encoding="utf-8")
    traces = folder / "traces"
    traces.mkdir()
    for number, run in enumerate(pipeline.runs, start=1):
        slug = "-".join(logical_words(run.machine))
        _write_json(traces / f"{number:02d}-{slug}.json", trace(run))
    _write_json(folder / "summary.json", summary(result))
    (folder / "README.md").write_text(_readme(pipeline), encoding="utf-8")


def trace(run: Run) -> dict[str, Any]:
    """States entered, in order, with their virtual times and durations."""
    execution = run.execution
    assert execution is not None
    visits: list[dict[str, Any]] = []
    open_visits: dict[tuple[Any, Any], list[dict[str, Any]]] = {}
    for event in execution.events:
        state = event.get("state") or {}
        name, index = state.get("name"), event.get("index")
        if event["type"] == "StateEntered" and "at" in event:
            visit = {
                "state": name,
                "type": state.get("type"),
                "iteration": index,
                "entered": iso(run.start + event["at"]),
                "enteredAfterSeconds": event["at"],
                "exited": None,
                "seconds": None,
                "retries": 0,
                "outcome": None,
            }
            visits.append(visit)
            open_visits.setdefault((name, index), []).append(visit)
        elif event["type"] == "StateRetried" and open_visits.get((name, index)):
            open_visits[(name, index)][0]["retries"] += 1
        elif event["type"] in ("StateExited", "StateFailed") and open_visits.get((name, index)):
            visit = open_visits[(name, index)].pop(0)
            visit["exited"] = iso(run.start + event["at"])
            visit["seconds"] = event["at"] - visit["enteredAfterSeconds"]
            visit["outcome"] = "failed" if event["type"] == "StateFailed" else "exited"
    for visit in visits:
        if visit["iteration"] is None:
            del visit["iteration"]
    return {
        "workflow": run.workflow,
        "stateMachine": run.machine,
        "execution": run.name,
        "executionArn": run.arn,
        "status": execution.status,
        "error": execution.error,
        "cause": execution.cause,
        "start": iso(run.start),
        "end": iso(run.start + execution.virtual_seconds),
        "virtualSeconds": execution.virtual_seconds,
        "transitions": execution.transitions,
        "clock": "virtual: waits and polling take their AWS durations without passing",
        "standIns": STAND_INS,
        "states": visits,
    }


def summary(result: DemoResult) -> dict[str, Any]:
    """The table the command prints, the runs, and what stood in for AWS."""
    return {
        "StandIns": STAND_INS,
        "TargetsNotRunLocally": result.not_run_locally,
        "Segments": [
            {
                "Query": row.query,
                "Status": row.status,
                "SegmentName": row.segment,
                "Users": row.users,
                "UsersWithoutContact": result.contacts.get(row.segment or "", {}).get("UsersWithoutContact"),
                "CustomerProfiles": result.contacts.get(row.segment or ""),
                "File": row.file,
                "Error": row.error,
            }
            for row in result.rows
        ],
        "Runs": [
            {
                "Workflow": run.workflow,
                "Execution": run.name,
                "Status": run.status,
                "Start": iso(run.start),
                "VirtualSeconds": run.execution.virtual_seconds if run.execution else None,
                "Transitions": run.execution.transitions if run.execution else None,
            }
            for run in result.runs
        ],
    }


def _readme(pipeline: LocalPipeline) -> str:
    stand_ins = "\n".join(f"- **{service}**: {what}" for service, what in STAND_INS.items())
    return f"""{OUTPUT_MARKER}

Written by `contextual-targeting demo` (`make demo`): the default stack's synthesized workflows ran on this
machine, on the demo's data, with local stand-ins for every AWS service. **Nothing here came from AWS.**

{stand_ins}

The segments are ranked by the Personalize stand-in, not by a trained model: for each query, every user's
interactions with the items the query selects, each weighted `0.5 ** (age in days / {HALF_LIFE_DAYS:g})`
(age: time to the newest interaction of the dataset), summed; the top `numResults` users, best first.

What is where:

- `segments/<dataset group>/<job>/`: the segment files and `manifest.json`, as the deployed post-processor
  writes them (the same keys as in the data bucket, here `s3://{pipeline.bucket}/`)
- `batch/<dataset group>/<solution>/<job>/*.out`: the batch segment job output, written by the Personalize
  stand-in in Personalize's format
- `events.jsonl`: every event the workflows put on the pipeline bus, in order
- `emails.jsonl`: every email the workflows sent (SNS), in order
- `customer-profiles/`: each Customer Profiles segment definition's members (`<definition>.csv`) and
  `segment-definitions.json`
- `logs/`: what each Lambda function printed or logged (CloudWatch Logs on AWS)
- `traces/`: one file per execution, the states entered with their times and durations on the virtual clock
- `summary.json`: the table the command printed, and every execution
"""


def _safe_path(folder: Path, key: str) -> Path:
    """`folder/key` for a key that stays inside `folder` (S3 keys may hold `..` or start with `/`)."""
    parts = key.split("/")
    if not _OUTPUT_KEY.match(key) or any(p in ("", ".", "..") for p in parts):
        raise DemoError(f"refusing to write the key {key!r}: it would leave the output folder")
    path = folder.joinpath(*parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _csv_row(values: list[Any]) -> str:
    cells = []
    for value in values:
        text = str(value)
        cells.append('"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\r\n') else text)
    return ",".join(cells)


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _write_jsonl(path: Path, values: Any) -> None:
    path.write_text("".join(json.dumps(v, ensure_ascii=False) + "\n" for v in values), encoding="utf-8")


def iso(epoch: float) -> str:
    """A virtual time as Step Functions writes times: `2026-01-01T09:00:00.000Z`."""
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
