"""The post-processor's pure functions: the streaming JSON-lines parser and its CSV rows."""

from __future__ import annotations

import csv
import io
import json
import random
import tracemalloc
from collections.abc import Iterable

import pytest

from tests.segments.support import (
    big_line_chunks,
    chunked,
    job_line,
    job_output,
    segment_parser,
    user_ids,
)

CHUNK_SIZES = [1, 2, 7, 64, 4096, 1 << 20]


def parse(
    data: bytes | Iterable[bytes], chunk_size: int = 1 << 20
) -> list[tuple[segment_parser.ParsedLine, list[str]]]:
    """Every line with the user ids its CSV rows hold (rows decoded back with the csv module)."""
    rows: dict[int, list[bytes]] = {}
    chunks = chunked(data, chunk_size) if isinstance(data, bytes) else data

    def on_rows(parsed: segment_parser.ParsedLine, data: bytes, count: int) -> None:
        rows.setdefault(parsed.line, []).append(data)
        assert data.count(b"\n") >= count  # one row (or more, for quoted line breaks) per user

    result = []
    for parsed in segment_parser.parse_job_output(chunks, on_rows):
        text = b"".join(rows.get(parsed.line, [])).decode("utf-8")
        users = [row[0] for row in csv.reader(io.StringIO(text))]
        assert len(users) == parsed.user_count
        result.append((parsed, users))
    return result


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_every_query_of_a_multi_query_output_becomes_its_own_segment(chunk_size: int) -> None:
    # GIVEN three queries (the original sample kept only the last one)
    queries = [f'ITEMS.genres = "{genre}"' for genre in ("Action", "Comedy", "Drama")]
    data = job_output(*(job_line(q, user_ids(50, f"{i}-")) for i, q in enumerate(queries)))

    # WHEN the output is parsed in chunks of any size
    lines = parse(data, chunk_size)

    # THEN each line keeps its own users, in rank order
    assert [(p.line, p.query, p.error) for p, _ in lines] == [
        (1, queries[0], None),
        (2, queries[1], None),
        (3, queries[2], None),
    ]
    assert [users for _, users in lines] == [user_ids(50, f"{i}-") for i in range(3)]


def test_ten_queries() -> None:
    data = job_output(*(job_line(f'ITEMS.genres = "G{i}"', user_ids(i + 1)) for i in range(10)))
    lines = parse(data, 4096)
    assert [p.user_count for p, _ in lines] == list(range(1, 11))
    assert [p.query for p, _ in lines] == [f'ITEMS.genres = "G{i}"' for i in range(10)]


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_both_output_shapes(chunk_size: int) -> None:
    data = job_output(
        job_line('ITEMS.genres = "Action"', ["1", "2"], shape="usersList"),
        job_line(
            'ITEMS.genres = "Comedy" AND ITEMS.genres = "Action"',
            ["25", "78", "108"],
            shape="recommendedUsers",
        ),
        '{"input": {"itemId": "105"}, "output": {"recommendedUsers": ["106", "107", "49"]}}',
    )
    lines = parse(data, chunk_size)
    assert [(p.query, users) for p, users in lines] == [
        ('ITEMS.genres = "Action"', ["1", "2"]),
        ('ITEMS.genres = "Comedy" AND ITEMS.genres = "Action"', ["25", "78", "108"]),
        ('ITEMS.itemId = "105"', ["106", "107", "49"]),
    ]
    assert all(p.error is None and p.has_user_list for p, _ in lines)


@pytest.mark.parametrize("data", [b"", b"\n\n", b"  \n"])
def test_empty_output_has_no_lines(data: bytes) -> None:
    assert parse(data) == []


def test_empty_query_result_is_a_line_without_users() -> None:
    [(parsed, users)] = parse(job_output(job_line('ITEMS.genres = "Western"', [])))
    assert (parsed.has_user_list, parsed.user_count, parsed.error, users) == (True, 0, None, [])


def test_error_line_is_reported_and_the_other_lines_still_parse() -> None:
    data = job_output(
        job_line('ITEMS.genres = "Action"', ["1"]),
        job_line('ITEMS.genre = "Drama"', None, error="Invalid item attribute: ITEMS.genre"),
        job_line('ITEMS.genres = "Comedy"', ["2"]),
    )
    lines = parse(data, 7)
    assert [(p.line, p.error) for p, _ in lines] == [
        (1, None),
        (2, "Invalid item attribute: ITEMS.genre"),
        (3, None),
    ]
    assert lines[1][0].query == 'ITEMS.genre = "Drama"'


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [
        (
            '{"input": {"itemAttributes": "x"}, "output": {"usersList": ["a", "b"',
            "the line ends inside the user list",
        ),
        ("this is not json", "expected a JSON object ('{'), found 't'"),
        (
            '{"input": {"itemAttributes": "x"}, "output": {"usersList": ["a", 7]}}',
            "expected a user id string, found '7'",
        ),
        (
            '{"input": {"itemAttributes": "x"}, "output": {"usersList": ["a",]}}',
            "expected a user id after ','",
        ),
        ('{"input": {"itemAttributes": "x"}} trailing', "unexpected 't' after the end of the object"),
        ('{"input": {"itemAttributes": "x"} "error": null}', "expected ',' or '}'"),
        ('{"input": {"itemAttributes": "x}, "error": null}', "the line ends inside a string"),
        (
            '{"input": {"itemAttributes": "x"}, "output": {"usersList": ["bad \\q escape"]}}',
            "invalid user id",
        ),
    ],
)
def test_malformed_line_is_named_and_the_next_line_still_parses(
    chunk_size: int, bad_line: str, reason: str
) -> None:
    # GIVEN a malformed line between two good ones
    data = job_output(job_line('ITEMS.a = "1"', ["u1"]), bad_line, job_line('ITEMS.a = "3"', ["u3"]))

    # WHEN parsed
    lines = parse(data, chunk_size)

    # THEN the error names line 2 and says what is wrong; lines 1 and 3 are intact
    assert [p.line for p, _ in lines] == [1, 2, 3]
    problem = lines[1][0].problem
    assert problem is not None
    assert problem.line == 2
    assert str(problem).startswith("line 2: ")
    assert reason in str(problem), str(problem)
    assert lines[1][0].error == str(problem)
    assert [(p.problem, users) for p, users in (lines[0], lines[2])] == [(None, ["u1"]), (None, ["u3"])]


def test_a_file_cut_inside_a_line_is_named() -> None:
    data = (
        job_output(job_line('ITEMS.a = "1"', ["u1"]))
        + b'{"input": {"itemAttributes": "x"}, "output": {"usersList": ["a'
    )
    lines = parse(data, 5)
    assert lines[1][0].problem is not None
    assert str(lines[1][0].problem).startswith("line 2: ")


TRICKY_IDS = [
    "plain",
    "with,comma",
    'with"quote',
    '","',
    ",",
    '",',
    "back\\slash",
    "ends with backslash\\",
    '\\",\\"',
    "Zoë",
    "東京",
    "emoji 🎬",
    " leading and trailing ",
    "line\nbreak",
    "carriage\rreturn",
    "separators \u2028\u2029\x85\x0b\x0c\x1c\x1d\x1e",
    "UserId",
]


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_non_ascii_and_comma_and_quote_ids_round_trip_through_csv(chunk_size: int) -> None:
    for ensure_ascii in (True, False):  # \u escapes and raw UTF-8 both occur in JSON
        line = json.dumps(
            {"input": {"itemAttributes": 'ITEMS.genres = "Action"'}, "output": {"usersList": TRICKY_IDS}},
            ensure_ascii=ensure_ascii,
        )
        [(parsed, users)] = parse(job_output(line), chunk_size)
        assert parsed.problem is None
        assert users == TRICKY_IDS


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_a_repeated_user_id_is_written_and_counted_once_at_its_best_rank(chunk_size: int) -> None:
    data = job_output(job_line('ITEMS.genres = "action"', ["1", "2", "1", "3", "2", "1"]))
    [(parsed, users)] = parse(data, chunk_size)
    assert users == ["1", "2", "3"]
    assert (parsed.user_count, parsed.duplicate_users) == (3, 3)


def test_an_empty_user_id_fails_its_line() -> None:
    [(parsed, _)] = parse(job_output(job_line('ITEMS.genres = "action"', ["1", ""])))
    assert str(parsed.problem) == "line 1: a user id is empty"


def test_csv_rows_quote_only_where_needed() -> None:
    assert segment_parser.encode_rows(["a", "b"]) == b"a\nb\n"
    assert segment_parser.encode_rows(["a,b", 'c"d', "Zoë"]) == '"a,b"\n"c""d"\nZoë\n'.encode()
    assert segment_parser.encode_rows([]) == b""
    with pytest.raises(ValueError, match="must be JSON strings"):
        segment_parser.encode_rows(["a", 1])


def test_random_ids_match_a_plain_json_parse() -> None:
    # GIVEN random ids over an alphabet full of JSON and CSV specials, and random chunk sizes
    rng = random.Random(4)
    alphabet = ['"', ",", "\\", " ", "a", "b", "é", "\n", "]", "[", "{", "}", ":", "/"]
    lines = [
        job_line(
            f'ITEMS.x = "{q}"', ["".join(rng.choices(alphabet, k=rng.randint(1, 6))) for _ in range(200)]
        )
        for q in range(5)
    ]
    data = job_output(*lines)
    for _ in range(20):
        # WHEN parsed in chunks
        parsed = parse(data, rng.randint(1, 300))
        # THEN the ids are exactly what json.loads sees, each once (short random ids repeat)
        assert [users for _, users in parsed] == [
            list(dict.fromkeys(json.loads(line)["output"]["usersList"])) for line in lines
        ]


def test_a_large_line_is_streamed_in_memory_bounded_by_its_distinct_users() -> None:
    # GIVEN a 1,000,000-user line (~9 MB) generated lazily
    count = 1_000_000
    batches: list[int] = []

    def on_rows(parsed: segment_parser.ParsedLine, data: bytes, users: int) -> None:
        batches.append(users)

    # WHEN it is parsed under tracemalloc
    tracemalloc.start()
    try:
        [parsed] = list(segment_parser.parse_job_output(big_line_chunks('ITEMS.a = "1"', count), on_rows))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    # THEN every user arrives, in batches of about one buffer; memory is the buffers plus the line's set of
    # distinct ids (needed to count and write each user once), not the line's Python objects
    assert parsed.user_count == count == sum(batches)
    assert len(batches) > 10
    assert peak < 8_000_000 + 100 * count, f"peak traced memory {peak} bytes"
