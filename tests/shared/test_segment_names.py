"""Segment names: a pure function of (dataset group, query), one-to-one, and valid for every destination.

Named cases of the defects it fixes, then properties over hostile queries and dataset groups, checked on the
shared naming module and on the Lambdas that use it (the split against moto S3, the Customer Profiles build).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from typing import Any, Literal, cast

import boto3
import pytest
import segment_names
from hypothesis import given
from hypothesis import strategies as st
from moto import mock_aws

from tests.destinations.customer_profiles.test_lambdas import (
    COLUMNS,
    PROFILES_MODEL,
    STATE_PREFIX,
    upload_file_handler,
)
from tests.segments.support import BUCKET, job_line, job_output, segment_store

DEFINITION_NAME = PROFILES_MODEL.operation_model("CreateSegmentDefinition").input_shape.members[
    "SegmentDefinitionName"
]
ATTRIBUTE_KEY = cast(Any, PROFILES_MODEL.shape_for("ProfileAttributes")).members["Attributes"].key
PERSONALIZE_NAME = r"[a-zA-Z0-9][a-zA-Z0-9_-]{0,62}"  # dataset group names (Personalize API)

# Lone surrogates cannot be encoded as UTF-8, so no file can hold them.
NO_SURROGATES: tuple[Literal["Cs"]] = ("Cs",)


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    """One moto S3 for the module; every run writes under its own job folder."""
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


_runs = itertools.count()


def split(s3: Any, dataset_group: str, lines: list[str]) -> list[dict[str, Any]]:
    """Run the split Lambda's code on a fresh job of `lines`; its summary entries."""
    job_name = f"{dataset_group}-run-{next(_runs)}"
    prefix = f"batch/{dataset_group}/sol/{job_name}/"
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}q.json.out", Body=job_output(*lines))
    job = segment_store.JobInfo(
        job_arn=f"arn:aws:personalize:eu-central-1:123456789012:batch-segment-job/{job_name}",
        job_name=job_name,
        dataset_group_name=dataset_group,
        output_uri=f"s3://{BUCKET}/{prefix}",
    )
    segments: list[dict[str, Any]] = segment_store.process_job(s3, job, bucket=BUCKET, prefix="segments/")[
        "Segments"
    ]
    return segments


def names_by_query(segments: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """Query -> (segment name, file name) of the ready segments."""
    return {
        s["Query"]: (s["SegmentName"], s["Key"].rsplit("/", 1)[1]) for s in segments if s["Status"] == "READY"
    }


# ---------------------------------------------------------------------------------------------------------
# The defects, by name


def test_segment_name_does_not_depend_on_the_other_queries_of_the_job(s3: Any) -> None:
    # GIVEN two non-ASCII values (they slugified to `genres`, `genres-2` in query order)
    action, drama = 'ITEMS.genres = "アクション"', 'ITEMS.genres = "ドラマ"'
    # WHEN one job has both, and a later job only the second
    both = names_by_query(split(s3, "shop", [job_line(action, ["1"]), job_line(drama, ["2"])]))
    alone = names_by_query(split(s3, "shop", [job_line(drama, ["2"])]))
    # THEN the second query has the same segment (file and name) in both, and it is not the first one's
    assert alone[drama] == both[drama]
    assert both[action] != both[drama]
    assert re.fullmatch(r"genres--[0-9a-f]{8}\.csv", both[drama][1])


def test_reordering_the_queries_keeps_every_segment_with_its_query(s3: Any) -> None:
    queries = ['ITEMS.genres = "Action"', 'ITEMS.genres = "action"', 'ITEMS.genres = "ACTION"']
    first = names_by_query(split(s3, "shop", [job_line(q, [q]) for q in queries]))
    second = names_by_query(split(s3, "shop", [job_line(q, [q]) for q in reversed(queries)]))
    assert first == second
    assert len({name for name, _ in first.values()}) == 3


def test_customer_profiles_names_differ_across_dataset_groups(s3: Any) -> None:
    # GIVEN `shop` + ITEMS.brand_name = "Acme" and `shop-brand` + ITEMS.name = "Acme", which both mapped to
    # the definition shop-brand-name-acme and the attribute segment_shop_brand_name_acme
    built = []
    for group, query in (("shop", 'ITEMS.brand_name = "Acme"'), ("shop-brand", 'ITEMS.name = "Acme"')):
        (segment,) = split(s3, group, [job_line(query, ["u1"])])
        event = {
            "Bucket": BUCKET,
            "Key": segment["Key"],
            "SegmentName": segment["SegmentName"],
            "DatasetGroupName": group,
            "Query": query,
            "RunId": f"run-{group}",
        }
        s3.put_object(
            Bucket=BUCKET, Key=f"train/{group}/users.csv", Body=b"USER_ID,E_MAIL\nu1,u1@example.com\n"
        )
        # WHEN the Customer Profiles destination builds each upload
        result = upload_file_handler.build_upload(
            event,
            s3,
            state_prefix=STATE_PREFIX,
            contacts_key="train/{dataset_group}/users.csv",
            columns=COLUMNS,
        )
        built.append((segment["SegmentName"], result["Definition"]["Name"], result["Attribute"]))
    # THEN definitions and attributes differ, and each definition is named after its segment
    (name_a, definition_a, attribute_a), (name_b, definition_b, attribute_b) = built
    assert definition_a != definition_b
    assert attribute_a != attribute_b
    assert (definition_a, definition_b) == (name_a, name_b)


def test_names_are_pinned_across_versions() -> None:
    # A changed name silently orphans a Customer Profiles definition: these must only change on purpose.
    cases = {
        'ITEMS.genres = "action"': ("genres-action", "bingewatch-genres-action"),
        'ITEMS.genres = "Action"': ("genres-action--0e8c624a", "bingewatch-genres-action--094be1d735"),
        'ITEMS.genres = "アクション"': ("genres--d2f7807f", "bingewatch-genres--5c80fac943"),
        "東京": ("query--130016b2", "bingewatch-query--b5c5b52905"),
    }
    for query, (slug, name) in cases.items():
        assert segment_names.query_slug(query) == slug
        assert segment_names.segment_name("bingewatch", slug) == name
    assert segment_names.attribute_name("bingewatch-genres-action--094be1d735") == (
        "segment_bingewatch_genres_action__094be1d735"
    )


@pytest.mark.parametrize(
    ("query", "slug"),
    [
        ('ITEMS.genres = "action"', "genres-action"),
        ('  ITEMS.genres\t=  "action"  ', "genres-action"),
        ('ITEMS.genres = "comedy" AND ITEMS.genres = "action"', "genres-comedy-genres-action"),
        ('ITEMS.year = "1999"', "year-1999"),
    ],
)
def test_lossless_slugs_are_the_query_in_readable_form(query: str, slug: str) -> None:
    assert segment_names.query_slug(query) == slug
    assert segment_names.is_lossless_slug(slug)


@pytest.mark.parametrize(
    ("query", "readable"),
    [
        ('ITEMS.genres = "Sci-Fi"', "genres-sci-fi"),
        ('ITEMS.genres = "Ciencia ficción"', "genres-ciencia-ficcion"),
        ('ITEMS.brand_name = "acme"', "brand-name-acme"),
        ('ITEMS.genres IN ("a")', "items-genres-in-a"),
        ('items.genres = "a"', "items-genres-a"),
    ],
)
def test_other_queries_get_a_readable_part_and_a_hash(query: str, readable: str) -> None:
    slug = segment_names.query_slug(query)
    assert re.fullmatch(re.escape(readable) + r"--[0-9a-f]{8}", slug)


def test_a_lossless_query_cannot_forge_a_hashed_slug() -> None:
    # With one `-` before the hash, ITEMS.genres = "sci" AND ITEMS.fi = "<hash>" would spell the hashed
    # slug of ITEMS.genres = "Sci-Fi".
    hashed = segment_names.query_slug('ITEMS.genres = "Sci-Fi"')
    readable, digest = hashed.split("--")
    forged = segment_names.query_slug(f'ITEMS.genres = "sci" AND ITEMS.fi = "{digest}"')
    assert forged == f"{readable}-{digest}" != hashed


def test_long_queries_are_cut_and_told_apart() -> None:
    one = " AND ".join(f'ITEMS.genres = "g{i}"' for i in range(40))
    two = " AND ".join(f'ITEMS.genres = "g{i}"' for i in range(41))
    slugs = [segment_names.query_slug(q) for q in (one, two)]
    assert slugs[0] != slugs[1]
    assert all(len(s) <= segment_names.SLUG_MAX_LENGTH for s in slugs)


# ---------------------------------------------------------------------------------------------------------
# Properties

_value_char = st.characters(exclude_characters='"\\', exclude_categories=NO_SURROGATES)
values = st.one_of(
    st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True),  # lossless
    st.lists(st.one_of(_value_char, st.just('\\"'), st.just("\\\\")), max_size=30).map("".join),
)
fields = st.one_of(
    st.sampled_from(["genres", "GENRES", "brand_name", "name", "brand"]),
    st.from_regex(r"[A-Za-z0-9_]{1,10}", fullmatch=True),
)
spaces = st.sampled_from(["", " ", "  ", "\t"])


@st.composite
def condition_queries(draw: st.DrawFn) -> str:
    """`ITEMS.<field> = "<value>"` joined with AND, with hostile values and arbitrary spacing."""
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        field, value = draw(fields), draw(values)
        parts.append(f'{draw(spaces)}ITEMS.{field}{draw(spaces)}={draw(spaces)}"{value}"{draw(spaces)}')
    return " AND ".join(parts)


queries = st.one_of(
    condition_queries(),
    st.text(st.characters(exclude_categories=NO_SURROGATES), min_size=1, max_size=80).filter(
        lambda q: q.strip(" \t\r\n") != ""
    ),
)
dataset_groups = st.from_regex(PERSONALIZE_NAME, fullmatch=True)


def assert_valid_customer_profiles_names(name: str) -> None:
    assert re.fullmatch(DEFINITION_NAME.metadata["pattern"].strip("^$"), name), name
    assert DEFINITION_NAME.metadata["min"] <= len(name) <= DEFINITION_NAME.metadata["max"]
    attribute = segment_names.attribute_name(name)
    assert ATTRIBUTE_KEY.metadata["min"] <= len(attribute) <= ATTRIBUTE_KEY.metadata["max"]
    assert re.fullmatch(r"[a-z0-9_]+", attribute)  # a plain key in `_profile.Attributes.<key>` targets


@given(st.lists(queries, max_size=10, unique_by=segment_names.normalise_query), dataset_groups)
def test_different_queries_get_different_valid_names(batch: list[str], group: str) -> None:
    slugs = [segment_names.query_slug(q) for q in batch]
    names = [segment_names.segment_name(group, s) for s in slugs]
    attributes = [segment_names.attribute_name(n) for n in names]
    assert len(set(slugs)) == len(set(names)) == len(set(attributes)) == len(batch)
    for slug, name in zip(slugs, names, strict=True):
        assert re.fullmatch(r"[a-z0-9]+(-{1,2}[a-z0-9]+)*", slug)
        assert len(slug) <= segment_names.SLUG_MAX_LENGTH
        assert_valid_customer_profiles_names(name)


@given(queries)
def test_a_lossless_slug_spells_the_normalised_query(query: str) -> None:
    slug = segment_names.query_slug(query)
    if segment_names.is_lossless_slug(slug):
        tokens = slug.split("-")
        spelled = " AND ".join(f'ITEMS.{f} = "{v}"' for f, v in zip(tokens[::2], tokens[1::2], strict=True))
        assert spelled == segment_names.normalise_query(query)
    else:
        assert re.search(r"--[0-9a-f]{8}$", slug)


@st.composite
def split_pairs(draw: st.DrawFn) -> tuple[tuple[str, str], tuple[str, str]]:
    """Two (dataset group, query) pairs cut from the same tokens at different places (shop|brand-name...)."""
    tokens = draw(st.lists(st.from_regex(r"[a-z0-9]{1,4}", fullmatch=True), min_size=4, max_size=8))
    pairs = []
    for cut in draw(st.lists(st.integers(1, len(tokens) - 2), min_size=2, max_size=2, unique=True)):
        rest = tokens[cut:]
        if len(rest) % 2:
            query = f'ITEMS.{"_".join(rest[:2])} = "{"-".join(rest[2:]) or "x"}"'
        else:
            query = " AND ".join(f'ITEMS.{f} = "{v}"' for f, v in zip(rest[::2], rest[1::2], strict=True))
        pairs.append(("-".join(tokens[:cut]), query))
    return pairs[0], pairs[1]


@given(
    st.one_of(
        st.tuples(st.tuples(dataset_groups, queries), st.tuples(dataset_groups, queries)), split_pairs()
    )
)
def test_names_differ_across_dataset_groups(pairs: tuple[tuple[str, str], tuple[str, str]]) -> None:
    (group_a, query_a), (group_b, query_b) = pairs
    if (group_a, segment_names.normalise_query(query_a)) == (group_b, segment_names.normalise_query(query_b)):
        return
    name_a = segment_names.segment_name(group_a, segment_names.query_slug(query_a))
    name_b = segment_names.segment_name(group_b, segment_names.query_slug(query_b))
    assert name_a != name_b
    assert segment_names.attribute_name(name_a) != segment_names.attribute_name(name_b)


@given(
    st.lists(queries, min_size=1, max_size=10, unique_by=segment_names.normalise_query),
    st.randoms(use_true_random=False),
    dataset_groups,
)
def test_the_split_names_each_query_alike_in_any_order_and_subset(
    batch: list[str], rng: Any, group: str
) -> None:
    # GIVEN the same queries in two jobs: all of them, then a shuffled subset
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        subset = rng.sample(batch, rng.randint(1, len(batch)))
        # WHEN the split Lambda's code runs on each
        full = split(client, group, [job_line(q, [f"u{i}"]) for i, q in enumerate(batch)])
        part = split(client, group, [job_line(q, [f"u{i}"]) for i, q in enumerate(subset)])
    # THEN every query is ready with one name and file name, the same in both jobs, and none repeats
    assert [s["Status"] for s in full] == ["READY"] * len(batch)
    named, named_again = names_by_query(full), names_by_query(part)
    assert all(named_again[q] == named[q] for q in subset)
    assert (
        len({name for name, _ in named.values()}) == len({file for _, file in named.values()}) == len(batch)
    )
