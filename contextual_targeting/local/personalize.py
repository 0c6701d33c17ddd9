"""A local stand-in for Amazon Personalize: answers the workflows' create/describe calls and writes batch
segment job output in Personalize's exact format. It is not a trained model.

Resources become ACTIVE after typical virtual durations (`DURATIONS`: imports 10 min, training 1 h, a segment
job 20 min), so the workflows poll as they would on AWS, on the virtual clock. What the real service checks
on the data, the stand-in checks too: an import job fails on rows that do not fit the dataset's schema, and a
solution version fails below Item-Attribute-Affinity's minimums (`contextual_targeting.cli.validation`).

Scoring rule of the batch segment job (the README's "Try it locally" points here): for a query
`ITEMS.<field> = "<value>"` (several joined with `AND`), an item matches when every named Items column holds
the value (categorical values are split on `|`; compared case-insensitively). A user's score is the sum, over
the user's interactions with matching items, of `0.5 ** (age / HALF_LIFE_DAYS)`, where `age` is the time from
the interaction to the newest interaction of the dataset: every matching interaction counts, recent ones more.
The top `numResults` users with a score above zero are the segment, best first, ties by user id.
"""

from __future__ import annotations

import csv
import io
import json
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from contextual_targeting.cli.validation import (
    MIN_ACTIVE_USERS,
    MIN_INTERACTIONS,
    MIN_USER_INTERACTIONS,
    check_csv_rows,
)
from contextual_targeting.local.harness import AwsError, TaskCall

STAND_IN = "local stand-in for Amazon Personalize (item-attribute affinity score, not a trained model)"
HALF_LIFE_DAYS = 365.0
# Virtual seconds from create to ACTIVE.
DURATIONS = {
    "DatasetGroup": 5,
    "Dataset": 5,
    "DatasetImportJob": 600,
    "Solution": 5,
    "SolutionVersion": 3600,
    "BatchSegmentJob": 1200,
}
# Describe* of these kinds has no `FailureReason` member (as in the Personalize API).
NO_FAILURE_REASON = frozenset({"Dataset", "Solution"})
_CONDITION = re.compile(
    r'\s*ITEMS\.(?P<field>[A-Za-z0-9_]+)\s*(?:=\s*"(?P<value>(?:[^"\\]|\\.)*)"'
    r'|IN\s*\((?P<values>\s*"(?:[^"\\]|\\.)*"(?:\s*,\s*"(?:[^"\\]|\\.)*")*\s*)\))\s*',
    re.IGNORECASE,
)
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')


@dataclass
class Resource:
    """One stand-in resource."""

    kind: str
    arn: str
    name: str
    request: dict[str, Any]
    created_at: float
    duration: float
    failure: str | None = None
    finished: bool = False


@dataclass
class PersonalizeStandIn:
    """Answers `aws-sdk:personalize:*` Tasks; reads training data and writes job output through `s3`."""

    s3: Any
    """A boto3 S3 client (moto in the demo)."""
    now: Callable[[], float]
    """Absolute virtual time (epoch seconds) of the call being answered."""
    region: str
    account: str
    durations: dict[str, float] = field(default_factory=lambda: dict(DURATIONS))
    resources: dict[str, Resource] = field(default_factory=dict)
    schemas: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Schema ARN -> Avro schema."""
    imported: dict[str, str] = field(default_factory=dict)
    """Dataset ARN -> S3 URI of its latest import."""
    written: list[str] = field(default_factory=list)
    """S3 URIs of the job output files written."""

    def call(self, action: str, call: TaskCall) -> Any:
        """Answer one SDK action (`createSchema`, `describeDatasetGroup`, ...)."""
        request = dict(call.parameters or {})
        if action == "createSchema":
            return self._create_schema(request)
        for verb in ("create", "describe"):
            kind = action.removeprefix(verb)
            if action.startswith(verb) and kind in DURATIONS:
                return self._create(kind, request) if verb == "create" else self._describe(kind, request)
        raise AwsError("Personalize.InvalidInputException", f"the {STAND_IN} does not answer {action}")

    # ---- create / describe

    def _arn(self, resource: str) -> str:
        return f"arn:aws:personalize:{self.region}:{self.account}:{resource}"

    def _create_schema(self, request: Mapping[str, Any]) -> dict[str, Any]:
        arn = self._arn(f"schema/{request['Name']}")
        if arn in self.schemas:
            raise AwsError("Personalize.ResourceAlreadyExistsException", f"{arn} already exists")
        self.schemas[arn] = json.loads(request["Schema"])
        return {"SchemaArn": arn}

    def _create(self, kind: str, request: dict[str, Any]) -> dict[str, Any]:
        arn = self._new_arn(kind, request)
        if arn in self.resources:
            raise AwsError("Personalize.ResourceAlreadyExistsException", f"{arn} already exists")
        name = str(request.get("Name") or request.get("JobName") or arn.rsplit("/", 1)[-1])
        resource = Resource(kind, arn, name, request, self.now(), self.durations[kind])
        if kind == "DatasetImportJob":
            resource.failure = self._import_problems(request)
            if resource.failure is None:
                self.imported[request["DatasetArn"]] = request["DataSource"]["DataLocation"]
        elif kind == "SolutionVersion":
            resource.failure = self._training_problems(request)
        self.resources[arn] = resource
        return {f"{kind}Arn": arn}

    def _new_arn(self, kind: str, request: Mapping[str, Any]) -> str:
        if kind == "DatasetGroup":
            return self._arn(f"dataset-group/{request['Name']}")
        if kind == "Dataset":
            group = str(request["DatasetGroupArn"]).rsplit("/", 1)[-1]
            return self._arn(f"dataset/{group}/{request['DatasetType']}")
        if kind == "DatasetImportJob":
            return self._arn(f"dataset-import-job/{request['JobName']}")
        if kind == "Solution":
            return self._arn(f"solution/{request['Name']}")
        if kind == "SolutionVersion":
            versions = sum(1 for r in self.resources.values() if r.kind == kind)
            return f"{request['SolutionArn']}/{versions + 1:08x}"
        return self._arn(f"batch-segment-job/{request['JobName']}")

    def _describe(self, kind: str, request: Mapping[str, Any]) -> dict[str, Any]:
        arn = str(request[f"{kind}Arn"])
        resource = self.resources.get(arn)
        if resource is None:
            raise AwsError("Personalize.ResourceNotFoundException", f"{arn} does not exist")
        now = self.now()
        done = now >= resource.created_at + resource.duration
        body: dict[str, Any] = {
            f"{kind}Arn": arn,
            "Name": resource.name,
            "CreationDateTime": _iso(resource.created_at),
            "LastUpdatedDateTime": _iso(min(now, resource.created_at + resource.duration)),
            "Status": "CREATE IN_PROGRESS",
        }
        if done and resource.failure:
            body["Status"] = "CREATE FAILED"
            if kind not in NO_FAILURE_REASON:
                body["FailureReason"] = resource.failure
        elif done:
            body["Status"] = "ACTIVE"
            if kind == "BatchSegmentJob" and not resource.finished:
                self._write_job_output(resource.request)
            resource.finished = True
        if kind == "BatchSegmentJob":
            body |= {
                "JobName": resource.name,
                "BatchSegmentJobArn": arn,
                "SolutionVersionArn": resource.request["SolutionVersionArn"],
                "NumResults": resource.request.get("NumResults", 25),
                "JobInput": resource.request["JobInput"],
                "JobOutput": resource.request["JobOutput"],
            }
            body.pop("Name")
        return {kind: body}

    # ---- the checks Personalize makes on the data

    def _import_problems(self, request: Mapping[str, Any]) -> str | None:
        """Rows that do not fit the dataset's schema make the import fail, as in Personalize."""
        dataset = self.resources.get(str(request["DatasetArn"]))
        schema = self.schemas.get(str((dataset.request if dataset else {}).get("SchemaArn")))
        uri = str(request["DataSource"]["DataLocation"])
        try:
            data = self._read(uri)
        except self.s3.exceptions.NoSuchKey:
            return f"{STAND_IN}: {uri} does not exist"
        if schema is None:
            return None
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / uri.rsplit("/", 1)[-1]
            path.write_bytes(data)
            problems = check_csv_rows(path, schema.get("fields", []), interactions=False)
        problems = [p.replace(str(path), uri) for p in problems]
        return f"{STAND_IN}: " + "; ".join(problems[:5]) if problems else None

    def _training_problems(self, request: Mapping[str, Any]) -> str | None:
        """Item-Attribute-Affinity refuses to train below its minimums."""
        interactions = self._dataset_rows(str(request["SolutionArn"]), "INTERACTIONS")
        per_user: dict[str, int] = {}
        for row in interactions:
            user = row.get("USER_ID", "")
            per_user[user] = per_user.get(user, 0) + 1
        active = sum(1 for count in per_user.values() if count >= MIN_USER_INTERACTIONS)
        problems = []
        if len(interactions) < MIN_INTERACTIONS:
            problems.append(f"{len(interactions)} interactions; at least {MIN_INTERACTIONS:,} are needed")
        if active < MIN_ACTIVE_USERS:
            problems.append(
                f"{active} users with {MIN_USER_INTERACTIONS} or more interactions; "
                f"at least {MIN_ACTIVE_USERS} are needed"
            )
        return f"{STAND_IN}: " + "; ".join(problems) if problems else None

    # ---- the batch segment job

    def _write_job_output(self, request: Mapping[str, Any]) -> None:
        """`<input file name>.out` under the job's output path: one JSON line per query line."""
        input_uri = str(request["JobInput"]["S3DataSource"]["Path"])
        output_uri = str(request["JobOutput"]["S3DataDestination"]["Path"])
        version = self.resources[str(request["SolutionVersionArn"])]
        solution_arn = str(version.request["SolutionArn"])
        interactions = self._dataset_rows(solution_arn, "INTERACTIONS")
        items = self._dataset_rows(solution_arn, "ITEMS")
        scorer = AffinityScorer(interactions, items)
        lines = []
        for text in self._read(input_uri).decode("utf-8-sig").split("\n"):
            if text.strip():
                lines.append(json.dumps(scorer.answer(text, int(request.get("NumResults", 25)))))
        bucket, key = _split(output_uri.rstrip("/") + "/" + input_uri.rsplit("/", 1)[-1] + ".out")
        self.s3.put_object(Bucket=bucket, Key=key, Body="".join(f"{line}\n" for line in lines).encode())
        self.written.append(f"s3://{bucket}/{key}")

    def _dataset_rows(self, solution_arn: str, dataset_type: str) -> list[dict[str, str]]:
        solution = self.resources.get(solution_arn)
        group = str((solution.request if solution else {}).get("DatasetGroupArn", "")).rsplit("/", 1)[-1]
        uri = self.imported.get(self._arn(f"dataset/{group}/{dataset_type}"))
        if uri is None:
            return []
        reader = csv.DictReader(io.StringIO(self._read(uri).decode("utf-8-sig"), newline=""))
        return [{k.strip(): (v or "") for k, v in row.items() if k is not None} for row in reader]

    def _read(self, uri: str) -> bytes:
        bucket, key = _split(uri)
        body: bytes = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        return body


class AffinityScorer:
    """The stand-in's ranking: recency-weighted interactions with the items a query selects."""

    def __init__(self, interactions: Iterable[Mapping[str, str]], items: Iterable[Mapping[str, str]]) -> None:
        self.items = {
            row.get("ITEM_ID", ""): {k.casefold(): _values(v) for k, v in row.items()} for row in items
        }
        self.interactions = [
            (row.get("USER_ID", ""), row.get("ITEM_ID", ""), _number(row.get("TIMESTAMP", "")))
            for row in interactions
        ]
        self.newest = max((t for _, _, t in self.interactions), default=0.0)

    def answer(self, line: str, num_results: int) -> dict[str, Any]:
        """One output line for one input line: the ranked users, or an error."""
        try:
            query = json.loads(line)
        except json.JSONDecodeError as err:
            return {"input": line, "output": None, "error": f"the input line is not JSON: {err.msg}"}
        attributes = query.get("itemAttributes") if isinstance(query, dict) else None
        if not isinstance(attributes, str):
            return {"input": query, "output": None, "error": "the input line has no itemAttributes string"}
        try:
            users = self.rank(parse_query(attributes), num_results)
        except ValueError as err:
            return {"input": query, "output": None, "error": str(err)}
        return {"input": query, "output": {"usersList": users}, "error": None}

    def rank(self, conditions: list[tuple[str, set[str]]], num_results: int) -> list[str]:
        """The top users for the conditions (field, accepted values), best first, ties by user id."""
        known = {name for attrs in self.items.values() for name in attrs}
        for name, _ in conditions:
            if name not in known:
                raise ValueError(f"ITEMS.{name} is not a field of the Items dataset")
        matching = {
            item
            for item, attrs in self.items.items()
            if all(attrs.get(name, set()) & values for name, values in conditions)
        }
        scores: dict[str, float] = {}
        for user, item, timestamp in self.interactions:
            if item in matching:
                age_days = max(0.0, self.newest - timestamp) / 86400
                scores[user] = scores.get(user, 0.0) + 0.5 ** (age_days / HALF_LIFE_DAYS)
        ranked = sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))
        return [user for user, score in ranked[:num_results] if score > 0]


def parse_query(text: str) -> list[tuple[str, set[str]]]:
    """`ITEMS.genres = "Action" AND ITEMS.genres IN ("A", "B")` -> [(field, values)], fields case-folded."""
    conditions = []
    for part in re.split(r"\s+AND\s+", text.strip(), flags=re.IGNORECASE):
        match = _CONDITION.fullmatch(part)
        if match is None:
            raise ValueError(f"the stand-in cannot read the query condition {part!r}")
        if match["values"] is not None:
            values = {_unescape(v).casefold() for v in _QUOTED.findall(match["values"])}
        else:
            values = {_unescape(match["value"]).casefold()}
        conditions.append((match["field"].casefold(), values))
    return conditions


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


def _values(cell: str | None) -> set[str]:
    return {v.strip().casefold() for v in (cell or "").split("|") if v.strip()}


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 0.0


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
