"""Validate a local data folder before anything is uploaded, with the training workflow's own rules.

The config, CSV header and query rules come from `lambda/training/validate_config/training_config.py`, the
module the workflow's validation Lambda runs, so the CLI and the workflow cannot disagree. The Lambda checks
only headers (it reads the first bytes of multi-GB objects); the full-file checks that need every row (value
types with file:line, Personalize's minimums) live here, because locally the files are at hand.
"""

from __future__ import annotations

import codecs
import csv
import functools
import importlib.util
import json
import math
import re
import sys
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

VALIDATOR_DIR = Path(__file__).resolve().parents[2] / "lambda" / "training" / "validate_config"
# A name of its own in sys.modules: the tests load the Lambda's modules under their plain names too.
VALIDATOR_MODULE = "contextual_targeting_training_config"

# Item-Attribute-Affinity's minimums (Personalize documentation); the Lambda cannot count rows cheaply.
MIN_INTERACTIONS = 1000
MIN_ACTIVE_USERS = 25
"""Users with at least MIN_USER_INTERACTIONS interactions."""
MIN_USER_INTERACTIONS = 2
MAX_ERRORS_PER_FILE = 10

PERSONALIZE_FOLDER = "personalize"
PINPOINT_FOLDER = "pinpoint"
_VALIDATOR_LINE = re.compile(r"^(?P<where>.+) line (?P<line>\d+): (?P<message>.*)$")


@functools.cache
def validator() -> ModuleType:
    """The workflow's validator module, loaded from the repository's `lambda/` folder."""
    path = VALIDATOR_DIR / "training_config.py"
    spec = importlib.util.spec_from_file_location(VALIDATOR_MODULE, path)
    if spec is None or spec.loader is None or not path.is_file():
        raise RuntimeError(f"the training config validator is missing: {path}")
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the module executes.
    sys.modules[VALIDATOR_MODULE] = module
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True, kw_only=True)
class LocalFile:
    """One file to upload: where it is and the key it gets."""

    path: Path
    key: str
    kind: str
    """`endpoints`, `training data`, `queries` or `config`: the upload order."""


@dataclass(kw_only=True)
class DatasetGroupFiles:
    """A training config and the files it names."""

    name: str
    config: LocalFile
    csvs: list[LocalFile] = field(default_factory=list)
    queries: list[LocalFile] = field(default_factory=list)


@dataclass(kw_only=True)
class LocalData:
    """What a data folder holds: training configs with their files, and Pinpoint endpoint files."""

    root: Path
    groups: list[DatasetGroupFiles] = field(default_factory=list)
    endpoints: list[LocalFile] = field(default_factory=list)


def display(path: Path) -> str:
    """A path as the user typed it: relative to the current directory when it is below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def personalize_root(data_dir: Path) -> Path:
    """`data/personalize/` in the repository's layout; a folder holding `train/` directly also works."""
    nested = data_dir / PERSONALIZE_FOLDER
    return nested if nested.is_dir() else data_dir


def find_data(data_dir: Path) -> tuple[LocalData, list[str]]:
    """The files of every training config under `train/<dataset-group>/`, and the problems found."""
    if not data_dir.is_dir():
        return LocalData(root=data_dir), [f"{display(data_dir)}: no such folder"]
    root = personalize_root(data_dir)
    data = LocalData(root=root)
    errors: list[str] = []
    rules = validator()
    configs = sorted((root / "train").glob(f"*/*{rules.CONFIG_SUFFIX}"))
    if not configs:
        errors.append(
            f"{display(root)}: no training config at train/<dataset-group>/<name>{rules.CONFIG_SUFFIX}"
        )
    for config_path in configs:
        key = config_path.relative_to(root).as_posix()
        group = config_path.parent.name
        files = DatasetGroupFiles(name=group, config=LocalFile(path=config_path, key=key, kind="config"))
        data.groups.append(files)
        # Syntax errors are `validate`'s to report; here an unreadable config just names no files.
        config = _load_json(config_path, [])
        if not isinstance(config, dict):
            continue
        for kind in rules.DATASET_TYPES:
            if kind in (config.get("datasets") or {}):
                csv_key = rules.csv_key(group, kind)
                files.csvs.append(LocalFile(path=root / csv_key, key=csv_key, kind="training data"))
        for solution in config.get("solutions") or []:
            name = (solution.get("serviceConfig") or {}).get("name") if isinstance(solution, dict) else None
            if isinstance(name, str) and solution.get("batchSegmentJobs"):
                query_key = rules.batch_input_key(group, name)
                files.queries.append(LocalFile(path=root / query_key, key=query_key, kind="queries"))
    endpoints_dir = data_dir / PINPOINT_FOLDER
    if endpoints_dir.is_dir():
        data.endpoints = [
            LocalFile(path=p, key=f"{PINPOINT_FOLDER}/{p.name}", kind="endpoints")
            for p in sorted(endpoints_dir.glob("*.csv"))
        ]
    return data, errors


class NotUtf8Error(ValueError):
    """A file holds bytes that are not UTF-8: `str()` is the `file:line: ...` report."""


def read_utf8(path: Path) -> str:
    """A small file's text (UTF-8, BOM dropped); bytes that are not UTF-8 raise NotUtf8Error with the line."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise NotUtf8Error(_not_utf8(path, line, data[err.start])) from None


def utf8_lines(path: Path) -> Iterator[str]:
    """A file's lines as it is read, decoded as UTF-8 (BOM dropped) and split at "\n" only, endings kept."""
    with path.open("rb") as handle:
        # Binary lines end at b"\n" only, not at U+2028 and the other separators str.splitlines knows.
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise NotUtf8Error(_not_utf8(path, number, raw[err.start])) from None


def _not_utf8(path: Path, line: int, byte: int) -> str:
    return f"{display(path)}:{line}: is not valid UTF-8 (byte 0x{byte:02x})"


def _load_json(path: Path, errors: list[str]) -> Any:
    """Parse a JSON file; a syntax error is reported as file:line:column."""
    try:
        return json.loads(read_utf8(path))
    except json.JSONDecodeError as err:
        errors.append(f"{display(path)}:{err.lineno}:{err.colno}: not valid JSON: {err.msg}")
    except NotUtf8Error as err:
        errors.append(str(err))
    except OSError as err:
        errors.append(f"{display(path)}: cannot read: {err}")
    return None


def validate(data: LocalData) -> list[str]:
    """Every problem of every training config and its files, each prefixed with the file (and line)."""
    errors: list[str] = []
    rules = validator()
    for group in data.groups:
        config_name = display(group.config.path)
        config = _load_json(group.config.path, errors)
        if config is None:
            continue
        structure = rules.check_structure(config)
        if structure.errors:
            errors += [f"{config_name}: {e}" for e in structure.errors]
            continue
        report = rules.Report()
        rules.check_semantics(config, report)
        name = config["datasetGroup"]["serviceConfig"]["name"]
        if name != group.name:
            report.error(
                "datasetGroup.serviceConfig.name",
                f"'{name}' must match the folder the config is in (train/{group.name}/)",
            )
        errors += [f"{config_name}: {e}" for e in report.errors]
        if report.errors:
            continue
        errors += _check_files(rules, config, group)
    return errors


def _check_files(rules: ModuleType, config: Mapping[str, Any], group: DatasetGroupFiles) -> list[str]:
    """CSV headers and queries with the workflow's rules, then every row here."""
    errors: list[str] = []
    datasets = config["datasets"]
    by_key = {f.key: f for f in group.csvs}
    for kind in rules.DATASET_TYPES:
        if kind not in datasets:
            continue
        local = by_key[rules.csv_key(group.name, kind)]
        if not local.path.is_file():
            errors.append(f"{display(local.path)}: missing (the config has a {kind} dataset)")
            continue
        name = display(local.path)
        if local.path.stat().st_size == 0:
            errors.append(f"{name}: is empty (no header line)")
            continue
        try:
            header = next(utf8_lines(local.path), "")
        except NotUtf8Error as err:
            errors.append(str(err))
            continue
        report = rules.Report()
        rules.check_csv_header(report, kind, f"{name}:1", header.rstrip("\r\n"), datasets[kind])
        errors += report.errors
        if report.errors:
            continue
        fields = datasets[kind]["schema"]["serviceConfig"]["schema"]["fields"]
        errors += check_csv_rows(local.path, fields, interactions=kind == "interactions")
    item_fields = [f["name"] for f in datasets["items"]["schema"]["serviceConfig"]["schema"]["fields"]]
    for local in group.queries:
        name = display(local.path)
        if not local.path.is_file():
            errors.append(f"{name}: missing (the config has batch segment jobs for this solution)")
            continue
        try:
            text = read_utf8(local.path)
        except NotUtf8Error as err:
            errors.append(str(err))
            continue
        report = rules.Report()
        rules.check_queries(report, name, text, item_fields)
        errors += [_file_line(e) for e in report.errors]
    return errors


def _file_line(error: str) -> str:
    """The validator says `<file> line 3: ...`; compilers and editors expect `<file>:3: ...`."""
    match = _VALIDATOR_LINE.match(error)
    return f"{match['where']}:{match['line']}: {match['message']}" if match else error


def _types(spec: Mapping[str, Any]) -> tuple[set[str], bool]:
    """The Avro type names of a field and whether it may be empty (a union with "null")."""
    kind = spec.get("type")
    names = {kind} if isinstance(kind, str) else {k for k in kind if isinstance(k, str)} if kind else set()
    return names - {"null"}, "null" in names


def _value_error(value: str, types: set[str], nullable: bool) -> str | None:
    """Why a CSV value does not fit the field's type, or None when it does."""
    if value == "":
        # Personalize reads an empty value as null: allowed only for nullable fields.
        return None if nullable or types <= {"string"} else "is empty but the field is not nullable"
    if types & {"string"}:
        return None
    if types & {"int", "long"}:
        try:
            int(value)
            return None
        except ValueError:
            pass
    if types & {"float", "double"}:
        try:
            if math.isfinite(float(value)):
                return None
        except ValueError:
            pass
    if "boolean" in types and value.lower() in ("true", "false"):
        return None
    return f"'{value}' is not {' or '.join(sorted(types))}"


def check_csv_rows(path: Path, fields: Sequence[Mapping[str, Any]], *, interactions: bool) -> list[str]:
    """Every row against the schema's types (file:line), and for interactions Personalize's minimums."""
    name = display(path)
    specs = {f["name"]: _types(f) for f in fields}
    errors: list[str] = []
    hidden = 0
    rows = 0
    per_user: Counter[str] = Counter()
    reader = csv.reader(utf8_lines(path))
    try:
        header = [c.strip() for c in next(reader, [])]
        user_column = header.index("USER_ID") if "USER_ID" in header else None
        for row in reader:
            if not row:
                continue
            rows += 1
            problems = _row_problems(header, row, specs)
            if problems and len(errors) < MAX_ERRORS_PER_FILE:
                # line_num is the line the record ends on (quoted fields may span lines).
                errors += [f"{name}:{reader.line_num}: {p}" for p in problems][
                    : MAX_ERRORS_PER_FILE - len(errors)
                ]
            elif problems:
                hidden += 1
            if interactions and user_column is not None and user_column < len(row):
                per_user[row[user_column]] += 1
    except NotUtf8Error as err:
        # The rows after it cannot be read: report it, and no counts made from part of the file.
        return [*errors, str(err)]
    except csv.Error as err:
        # Lines end at "\n" only, so a carriage return alone inside an unquoted field is not a line end.
        return [*errors, f"{name}:{reader.line_num}: not a CSV record: {err}"]
    if hidden:
        errors.append(f"{name}: {hidden} more row(s) with problems")
    if interactions:
        errors += _minimums(name, rows, per_user)
    return errors


def _row_problems(header: list[str], row: list[str], specs: Mapping[str, tuple[set[str], bool]]) -> list[str]:
    """Problems of one data row: its width, then each value's type."""
    if len(row) != len(header):
        return [f"has {len(row)} values, the header has {len(header)} columns"]
    problems = []
    for column, value in zip(header, row, strict=True):
        types, nullable = specs[column]
        problem = _value_error(value, types, nullable)
        if problem:
            problems.append(f"{column} {problem}")
    return problems


def _minimums(name: str, rows: int, per_user: Counter[str]) -> list[str]:
    """Item-Attribute-Affinity refuses to train below these counts."""
    errors = []
    if rows < MIN_INTERACTIONS:
        errors.append(f"{name}: {rows} interactions; Personalize needs at least {MIN_INTERACTIONS:,}")
    active = sum(1 for count in per_user.values() if count >= MIN_USER_INTERACTIONS)
    if active < MIN_ACTIVE_USERS:
        errors.append(
            f"{name}: {active} users with {MIN_USER_INTERACTIONS} or more interactions; Personalize needs at "
            f"least {MIN_ACTIVE_USERS}"
        )
    return errors


def upload_order(data: LocalData, *, with_endpoints: bool) -> list[LocalFile]:
    """Endpoints, training CSVs, query files, and each config last: the config upload starts the run."""
    files: list[LocalFile] = list(data.endpoints) if with_endpoints else []
    files += [f for g in data.groups for f in g.csvs]
    files += [f for g in data.groups for f in g.queries]
    files += [g.config for g in data.groups]
    return files
