"""Segment names: a pure function of (dataset group, query), the same in every run and every destination.

A name never depends on the other queries of a job or on their order, so a stable Customer Profiles segment
definition (and its member list) always follows the same query. Names use lowercase ASCII letters, digits and
`-` only: Personalize matches item values case-sensitively ("ignores case only when matching event types",
https://docs.aws.amazon.com/personalize/latest/dg/filter-expression-guidelines-requirements.html), and no
consumer of a name (S3 keys copied to case-insensitive file systems, Customer Profiles names and attribute
keys) is relied on to keep `Action` and `action` apart.

- **Query slug** (the segment file's name): when the query is `ITEMS.<field> = "<value>"` conditions joined
  with `AND`, and every field and value is lowercase ASCII letters and digits, the slug is
  `<field>-<value>[-<field>-<value>...]` (`genres-action`). It is *lossless*: splitting it at `-` gives back
  the normalised query exactly. Any other query gets a readable part and `--` + 8 hex digits of the SHA-256
  of its normalised text (`ITEMS.genres = "Action"` -> `genres-action--<8 hex>`, `アクション` ->
  `genres--<8 hex>`). A lossless slug never holds `--`, so no query can forge another's hashed slug.
- **Segment name** (`SegmentName`, the Customer Profiles segment definition name): `<dataset group>-<slug>`
  when the dataset group is lowercase letters and digits, the slug is lossless and the whole fits in 64
  characters (split at the first `-` it gives both back); otherwise the readable part and `--` + 10 hex
  digits of the SHA-256 of (dataset group, slug). So `shop` + `brand-name-acme` and `shop-brand` +
  `name-acme` differ.

The normalised query is the query with the whitespace between its tokens reduced to the canonical
`ITEMS.<field> = "<value>" AND ...` (field and value text kept as written, escapes included), or, for any
other query, the query without surrounding whitespace. Two different normalised queries can only share a
hashed name by a SHA-256 prefix collision (2^-32 per pair of hashed slugs); the post-processor refuses such a
pair within a job.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

SLUG_MAX_LENGTH = 60
NAME_LIMIT = 64
"""Customer Profiles SegmentDefinitionName: `^[a-zA-Z0-9_-]+$`, 1-64 characters (its botocore model)."""
SLUG_HASH_LENGTH = 8
NAME_HASH_LENGTH = 10
HASH_MARK = "--"
ATTRIBUTE_PREFIX = "segment_"

_WS = "[ \t\r\n]*"  # the query grammar's whitespace; Unicode spaces are part of the text
_CONDITION = re.compile(
    _WS + r"ITEMS\.([A-Za-z0-9_]+)" + _WS + "=" + _WS + r'"((?:[^"\\]|\\.)*)"' + _WS, re.DOTALL
)
_AND = re.compile(r"AND(?=[ \t\r\n])")
_TOKEN = re.compile(r"[a-z0-9]+")
_NON_SLUG = re.compile(r"[^a-z0-9]+")
_READABLE_GROUP = re.compile(r"[a-z0-9]+")


def query_conditions(query: str) -> list[tuple[str, str]] | None:
    """`(field, value)` of `ITEMS.<field> = "<value>"` conditions joined with AND; None for other queries."""
    conditions: list[tuple[str, str]] = []
    position = 0
    while True:
        match = _CONDITION.match(query, position)
        if match is None:
            return None
        conditions.append((match[1], match[2]))
        position = match.end()
        if position == len(query):
            return conditions
        joined = _AND.match(query, position)
        if joined is None:
            return None
        position = joined.end()


def normalise_query(query: str) -> str:
    """The query as names see it: canonical spacing for AND-ed conditions, else without outer whitespace."""
    conditions = query_conditions(query)
    if conditions is None:
        return query.strip(" \t\r\n")
    return " AND ".join(f'ITEMS.{field} = "{value}"' for field, value in conditions)


def query_slug(query: str) -> str:
    """The segment file's name part for a query: lossless `genres-action`, else `<readable>--<8 hex>`."""
    conditions = query_conditions(query)
    if conditions is not None:
        lossless = "-".join(f"{field}-{value}" for field, value in conditions)
        if len(lossless) <= SLUG_MAX_LENGTH and all(
            _TOKEN.fullmatch(field) and _TOKEN.fullmatch(value) for field, value in conditions
        ):
            return lossless
        text = " ".join(f"{field} {value}" for field, value in conditions)
    else:
        text = query
    readable = _readable(text, SLUG_MAX_LENGTH - len(HASH_MARK) - SLUG_HASH_LENGTH) or "query"
    return f"{readable}{HASH_MARK}{_digest(normalise_query(query), SLUG_HASH_LENGTH)}"


def segment_name(dataset_group: str, slug: str) -> str:
    """The segment's name across runs and destinations (also its Customer Profiles definition name)."""
    readable = f"{dataset_group}-{slug}"
    if _READABLE_GROUP.fullmatch(dataset_group) and is_lossless_slug(slug) and len(readable) <= NAME_LIMIT:
        return readable
    text = f"{dataset_group} {slug.split(HASH_MARK, 1)[0]}"
    cut = _readable(text, NAME_LIMIT - len(HASH_MARK) - NAME_HASH_LENGTH) or "segment"
    pair = dataset_group + "\n" + slug  # a newline is in neither part: the pair is read back unambiguously
    return f"{cut}{HASH_MARK}{_digest(pair, NAME_HASH_LENGTH)}"


def attribute_name(name: str) -> str:
    """Profile attribute holding the membership: `segment_` + the name with `_` for `-` (one-to-one)."""
    return ATTRIBUTE_PREFIX + name.replace("-", "_")


def is_lossless_slug(slug: str) -> bool:
    """Whether `slug` is a lossless query slug: `<field>-<value>` pairs of lowercase letters and digits."""
    tokens = slug.split("-")
    return len(tokens) % 2 == 0 and all(_TOKEN.fullmatch(token) for token in tokens)


def _readable(text: str, limit: int) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return _NON_SLUG.sub("-", ascii_text).strip("-")[:limit].rstrip("-")


def _digest(text: str, length: int) -> str:
    # surrogatepass: a query decoded from JSON may hold a lone surrogate; the name must still be defined.
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:length]
