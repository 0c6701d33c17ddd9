"""Checks of the committed Bingewatch demo datasets under data/ (see data/generate.py)."""

from __future__ import annotations

import csv
import json
import math
import re
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "data"
TRAIN = DATA / "personalize" / "train" / "bingewatch"
CONFIG = TRAIN / "bingewatch_config.json"
JOB_CONFIG = (
    DATA / "personalize" / "batch" / "bingewatch" / "bw_aws-item-attribute-affinity" / "job_config.json"
)
ENDPOINTS = DATA / "pinpoint" / "endpoints.csv"
DATASETS = ("interactions", "items", "users")
GENRES = {
    "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
    "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
}  # fmt: skip
# Plausible unix seconds: after the epoch, before the end of the demo's activity window.
EPOCH_2015 = int(datetime(2015, 1, 1, tzinfo=UTC).timestamp())
EPOCH_2025 = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp())
AVRO_INT_RANGE = (-(2**31), 2**31 - 1)
AVRO_LONG_RANGE = (-(2**63), 2**63 - 1)


def _config() -> dict:
    """The committed training config."""
    return json.loads(CONFIG.read_text(encoding="utf-8"))


def _schema(dataset: str) -> dict:
    """The Avro schema of one dataset, from the training config."""
    return _config()["datasets"][dataset]["schema"]["serviceConfig"]["schema"]


def _read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of a committed CSV file."""
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def _parses_as(value: str, avro_type: str | list[str]) -> bool:
    """Whether a CSV cell is a valid value of a (possibly union) Avro type."""
    types = [avro_type] if isinstance(avro_type, str) else avro_type
    if value == "":
        return "null" in types
    for kind in types:
        if kind == "string":
            return True
        if kind in ("int", "long") and re.fullmatch(r"-?\d+", value):
            low, high = AVRO_INT_RANGE if kind == "int" else AVRO_LONG_RANGE
            if low <= int(value) <= high:
                return True
        if kind in ("float", "double"):
            try:
                if math.isfinite(float(value)):
                    return True
            except ValueError:
                pass
    return False


@pytest.mark.parametrize("dataset", DATASETS)
def test_csv_header_matches_schema_fields_in_order(dataset: str) -> None:
    header, _ = _read(TRAIN / f"{dataset}.csv")
    assert header == [field["name"] for field in _schema(dataset)["fields"]]


@pytest.mark.parametrize("dataset", DATASETS)
def test_schema_is_a_personalize_avro_record(dataset: str) -> None:
    schema = _schema(dataset)
    assert schema["type"] == "record"
    assert schema["name"] == dataset.capitalize()
    assert schema["namespace"] == "com.amazonaws.personalize.schema"
    assert schema["version"] == "1.0"


@pytest.mark.parametrize("dataset", DATASETS)
def test_every_value_parses_as_its_avro_type(dataset: str) -> None:
    # GIVEN the schema's types by column
    types = {field["name"]: field["type"] for field in _schema(dataset)["fields"]}
    _, rows = _read(TRAIN / f"{dataset}.csv")
    assert rows

    # WHEN every cell is checked against its column's type
    bad = [
        (number, column, value)
        for number, row in enumerate(rows, start=2)
        for column, value in row.items()
        if not _parses_as(value, types[column])
    ]

    # THEN none fails
    assert bad == []


def test_items_have_a_categorical_genres_field_from_the_movielens_vocabulary() -> None:
    fields = {field["name"]: field for field in _schema("items")["fields"]}
    assert fields["GENRES"].get("categorical") is True
    _, items = _read(TRAIN / "items.csv")
    for item in items:
        assert item["GENRES"], item
        assert set(item["GENRES"].split("|")) <= GENRES, item


def test_timestamps_are_plausible_unix_seconds() -> None:
    # GIVEN items and their interactions
    _, items = _read(TRAIN / "items.csv")
    _, interactions = _read(TRAIN / "interactions.csv")
    created = {item["ITEM_ID"]: int(item["CREATION_TIMESTAMP"]) for item in items}

    # THEN items are created in their release year, after the epoch
    for item in items:
        creation = int(item["CREATION_TIMESTAMP"])
        assert 0 < creation < EPOCH_2025, item
        assert datetime.fromtimestamp(creation, UTC).year == int(item["RELEASE_YEAR"]), item

    # AND interactions happen in 2015-2024 (seconds, not milliseconds), after the item's creation
    for row in interactions:
        timestamp = int(row["TIMESTAMP"])
        assert EPOCH_2015 <= timestamp < EPOCH_2025, row
        assert timestamp >= created[row["ITEM_ID"]], row


def test_interactions_are_rated_watches() -> None:
    _, interactions = _read(TRAIN / "interactions.csv")
    assert {row["EVENT_TYPE"] for row in interactions} == {"Watch"}
    ratings = {float(row["EVENT_VALUE"]) for row in interactions}
    assert ratings <= {step / 2 for step in range(2, 11)}


def test_personalize_minimums_are_cleared() -> None:
    # Item-Attribute-Affinity needs >= 1,000 interactions and >= 25 users with >= 2 interactions.
    _, interactions = _read(TRAIN / "interactions.csv")
    per_user = Counter(row["USER_ID"] for row in interactions)
    assert len(interactions) >= 1000
    assert sum(count >= 2 for count in per_user.values()) >= 25


def test_ids_are_consistent_across_datasets() -> None:
    # GIVEN all three datasets
    _, users = _read(TRAIN / "users.csv")
    _, items = _read(TRAIN / "items.csv")
    _, interactions = _read(TRAIN / "interactions.csv")
    user_ids = [user["USER_ID"] for user in users]
    item_ids = [item["ITEM_ID"] for item in items]

    # THEN ids are unique and every interaction references a known user and item
    assert len(set(user_ids)) == len(user_ids)
    assert len(set(item_ids)) == len(item_ids)
    assert {row["USER_ID"] for row in interactions} <= set(user_ids)
    assert {row["ITEM_ID"] for row in interactions} <= set(item_ids)

    # AND every user has at least 2 interactions and every item at least one
    per_user = Counter(row["USER_ID"] for row in interactions)
    assert min(per_user[user_id] for user_id in user_ids) >= 2
    assert {row["ITEM_ID"] for row in interactions} == set(item_ids)


def test_users_have_skewed_genre_tastes() -> None:
    # GIVEN each user's watches by genre
    _, items = _read(TRAIN / "items.csv")
    _, interactions = _read(TRAIN / "interactions.csv")
    genres = {item["ITEM_ID"]: item["GENRES"].split("|") for item in items}
    by_user: defaultdict[str, Counter[str]] = defaultdict(Counter)
    overall: Counter[str] = Counter()
    for row in interactions:
        by_user[row["USER_ID"]].update(genres[row["ITEM_ID"]])
        overall.update(genres[row["ITEM_ID"]])
    watches = Counter(row["USER_ID"] for row in interactions)

    # WHEN comparing a user's favourite genre share with that genre's share overall
    lifts = []
    for user_id, counts in by_user.items():
        genre, count = counts.most_common(1)[0]
        lifts.append((count / watches[user_id]) / (overall[genre] / len(interactions)))

    # THEN users watch their favourite genre far more than the average user does
    assert sum(lifts) / len(lifts) > 1.5


def test_users_look_like_the_sample() -> None:
    _, users = _read(TRAIN / "users.csv")
    for user in users:
        assert user["E_MAIL"] == f"success+{user['USER_ID']}@simulator.amazonses.com"
        assert 18 <= int(user["AGE"]) <= 80
        assert user["GENDER"] in {"Female", "Male", "Agender"}


def test_every_user_has_a_pinpoint_endpoint_with_a_unique_id() -> None:
    # GIVEN the endpoints and the users
    header, endpoints = _read(ENDPOINTS)
    _, users = _read(TRAIN / "users.csv")
    emails = {user["USER_ID"]: user["E_MAIL"] for user in users}

    # THEN the header uses Pinpoint's import attribute names
    assert header == [
        "Id",
        "ChannelType",
        "Address",
        "OptOut",
        "User.UserId",
        "User.UserAttributes.Gender",
        "User.UserAttributes.Age",
    ]
    # AND endpoint ids are unique, every user has one, and none points to an unknown user
    ids = [endpoint["Id"] for endpoint in endpoints]
    assert len(set(ids)) == len(ids)
    assert {endpoint["User.UserId"] for endpoint in endpoints} == set(emails)

    # AND addresses fit their channel
    for endpoint in endpoints:
        assert endpoint["OptOut"] in {"ALL", "NONE"}
        if endpoint["ChannelType"] == "EMAIL":
            assert endpoint["Address"] == emails[endpoint["User.UserId"]]
        else:
            assert endpoint["ChannelType"] == "SMS"
            assert re.fullmatch(r"\+1\d{10}", endpoint["Address"]), endpoint
    assert any(endpoint["OptOut"] == "ALL" for endpoint in endpoints)


def test_job_config_holds_one_to_ten_item_attribute_queries() -> None:
    # GIVEN the batch segment job input, one JSON document per line
    lines = JOB_CONFIG.read_text(encoding="utf-8").splitlines()
    item_fields = {field["name"].lower() for field in _schema("items")["fields"]}

    # THEN there are 1-10 queries, each on a known items field and genre
    assert 1 <= len(lines) <= 10
    for line in lines:
        query = json.loads(line)
        assert set(query) == {"itemAttributes"}
        for condition in query["itemAttributes"].split(" AND "):
            match = re.fullmatch(r'ITEMS\.(\w+) = "([^"]+)"', condition)
            assert match, condition
            assert match.group(1).lower() in item_fields
            assert match.group(2) in GENRES


def test_config_names_the_item_attribute_affinity_solution() -> None:
    config = _config()
    assert config["datasetGroup"]["serviceConfig"] == {"name": "bingewatch", "domain": "VIDEO_ON_DEMAND"}
    (solution,) = config["solutions"]
    assert (
        solution["serviceConfig"]["recipeArn"] == "arn:aws:personalize:::recipe/aws-item-attribute-affinity"
    )
    assert JOB_CONFIG.parent.name == solution["serviceConfig"]["name"]
    for job in solution["batchSegmentJobs"]:
        assert 1 <= job["serviceConfig"]["numResults"] <= 5_000_000


def test_generator_reproduces_the_committed_files(tmp_path: Path) -> None:
    # GIVEN a fresh run of the generator with default arguments
    subprocess.run(
        [sys.executable, str(DATA / "generate.py"), "--out", str(tmp_path)], check=True, timeout=60
    )
    generated = sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*") if path.is_file())

    # THEN it writes the committed files, byte for byte
    assert generated
    for relative in generated:
        assert (DATA / relative).read_bytes() == (tmp_path / relative).read_bytes(), relative


def test_committed_files_stay_small() -> None:
    generated = [path for path in DATA.rglob("*") if path.is_file() and path.suffix in {".csv", ".json"}]
    assert sum(path.stat().st_size for path in generated) < 2_000_000
