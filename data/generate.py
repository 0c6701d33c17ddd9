"""Generate the "Bingewatch" demo datasets (Personalize training data, batch queries, Pinpoint endpoints).

Stdlib only and deterministic: the same arguments give byte-identical files (on the same Python version),
so the committed files under ``data/`` can be checked against a fresh run.

Run from the repository root::

    python data/generate.py                  # rewrites the committed demo files next to this script
    python data/generate.py --out /tmp/demo  # same files somewhere else

Big version for benchmarks (1M users, 4M interactions, 1.3M endpoints: about 280 MB and 30 s)::

    python data/generate.py --users 1000000 --out /tmp/big

Written below ``--out``:

- ``personalize/train/bingewatch/{interactions,items,users}.csv`` and ``bingewatch_config.json``
- ``personalize/batch/bingewatch/bw_aws-item-attribute-affinity/job_config.json`` (JSON lines)
- ``pinpoint/endpoints.csv``
"""

from __future__ import annotations

import argparse
import bisect
import csv
import itertools
import json
import random
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

DATASET_GROUP = "bingewatch"
SOLUTION = "bw_aws-item-attribute-affinity"
DOMAIN = "VIDEO_ON_DEMAND"
EVENT_TYPE = "Watch"
EMAIL_DOMAIN = "simulator.amazonses.com"

# Interactions happen while Bingewatch exists; items are released earlier, never before the epoch
# because CREATION_TIMESTAMP is unix seconds.
ACTIVITY_START = int(datetime(2015, 1, 1, tzinfo=UTC).timestamp())
ACTIVITY_END = int(datetime(2024, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp())
FIRST_RELEASE_YEAR = 1975
LAST_RELEASE_YEAR = 2024
DAY = 86_400

# MovieLens' genre vocabulary with rough MovieLens frequencies, so catalogue and tastes look familiar.
GENRE_WEIGHTS: dict[str, float] = {
    "Action": 10,
    "Adventure": 7,
    "Animation": 3,
    "Children": 4,
    "Comedy": 20,
    "Crime": 6,
    "Documentary": 3,
    "Drama": 25,
    "Fantasy": 4,
    "Film-Noir": 0.7,
    "Horror": 6,
    "Musical": 2,
    "Mystery": 3,
    "Romance": 9,
    "Sci-Fi": 5,
    "Thriller": 10,
    "War": 2,
    "Western": 1.5,
}
GENRES = tuple(GENRE_WEIGHTS)

# One segment query per line; Personalize allows at most 10 per batch segment job input file.
# Field case follows every AWS example (and the original sample): `ITEMS.genres`, for the GENRES column.
SEGMENT_GENRES = ("Action", "Comedy", "Drama", "Horror", "Sci-Fi")

# Avro fields, in CSV column order. Personalize needs every CSV column in the schema.
INTERACTIONS_FIELDS: list[dict[str, object]] = [
    {"name": "USER_ID", "type": "string"},
    {"name": "ITEM_ID", "type": "string"},
    {"name": "EVENT_VALUE", "type": "float"},
    {"name": "EVENT_TYPE", "type": "string"},
    {"name": "TIMESTAMP", "type": "long"},
]
ITEMS_FIELDS: list[dict[str, object]] = [
    {"name": "ITEM_ID", "type": "string"},
    # A plain string is imported but not trained on: fine for a display title.
    {"name": "TITLE", "type": "string"},
    {"name": "RELEASE_YEAR", "type": "int"},
    {"name": "CREATION_TIMESTAMP", "type": "long"},
    # Item-Attribute-Affinity segments by a categorical item field.
    {"name": "GENRES", "type": "string", "categorical": True},
]
USERS_FIELDS: list[dict[str, object]] = [
    {"name": "USER_ID", "type": "string"},
    {"name": "GENDER", "type": "string", "categorical": True},
    # Not categorical: an e-mail address is no category, so Personalize imports it without training on it.
    {"name": "E_MAIL", "type": "string"},
    {"name": "AGE", "type": "int"},
]

GENDERS = ("Female", "Male", "Agender")
GENDER_WEIGHTS = (48, 48, 4)

# Real-looking area codes; the 555 exchange keeps the numbers fictional.
AREA_CODES = (
    "201", "202", "206", "212", "213", "214", "215", "303", "305", "310",
    "312", "313", "404", "408", "412", "415", "503", "504", "512", "602",
    "612", "617", "702", "704", "713", "718", "720", "773", "801", "808",
    "813", "816", "818", "858", "901", "904", "916", "919", "949", "971",
)  # fmt: skip

ADJECTIVES = (
    "Silent", "Broken", "Golden", "Last", "Hidden", "Burning", "Lonely", "Crimson", "Wild", "Endless",
    "Frozen", "Forgotten", "Little", "Midnight", "Secret", "Electric", "Velvet", "Restless", "Hollow",
    "Bright", "Dark", "Distant", "Fearless", "Lucky", "Savage", "Shattered", "Sweet", "Wicked", "Quiet",
)  # fmt: skip
GENERIC_NOUNS = (
    "Summer", "River", "Promise", "Road", "City", "Garden", "Storm", "Letter", "Island", "Mirror",
    "Season", "Harbor", "Winter", "Horizon", "Bridge", "Echo", "Voyage", "Crossing", "Lantern", "Orchard",
)  # fmt: skip
GENRE_NOUNS: dict[str, tuple[str, ...]] = {
    "Action": ("Strike", "Fury", "Target", "Impact", "Siege", "Pursuit", "Payback", "Vendetta"),
    "Adventure": ("Expedition", "Treasure", "Quest", "Frontier", "Compass", "Jungle", "Odyssey"),
    "Animation": ("Toybox", "Doodle", "Critters", "Moonbeam", "Paper Kingdom", "Robot"),
    "Children": ("Puppy", "Treehouse", "Playground", "Wishes", "Birthday", "Pony"),
    "Comedy": ("Wedding", "Roommates", "Vacation", "Reunion", "Mix-Up", "Neighbors", "Bachelor"),
    "Crime": ("Heist", "Alibi", "Racket", "Getaway", "Syndicate", "Informant", "Ransom"),
    "Documentary": ("Chronicle", "Witness", "Record", "Footprints", "Voices", "Archive"),
    "Drama": ("Inheritance", "Confession", "Homecoming", "Verdict", "Daughter", "Farewell", "Legacy"),
    "Fantasy": ("Dragon", "Kingdom", "Sorcerer", "Crown", "Spellbook", "Oracle", "Realm"),
    "Film-Noir": ("Dame", "Double Cross", "Night Shift", "Cigarette", "Stranger", "Rain"),
    "Horror": ("Crypt", "Shadows", "Haunting", "Curse", "Cellar", "Ritual", "Scream"),
    "Musical": ("Melody", "Chorus", "Encore", "Ballroom", "Serenade", "Spotlight"),
    "Mystery": ("Riddle", "Cipher", "Disappearance", "Clue", "Locked Room", "Manor"),
    "Romance": ("Kiss", "Heart", "Valentine", "Honeymoon", "Sweetheart", "Love Letter", "Rendezvous"),
    "Sci-Fi": ("Nebula", "Android", "Colony", "Signal", "Orbit", "Paradox", "Singularity"),
    "Thriller": ("Witness", "Deadline", "Conspiracy", "Trap", "Stalker", "Countdown", "Blackout"),
    "War": ("Trenches", "Battalion", "Front", "Surrender", "Armistice", "Platoon"),
    "Western": ("Outlaw", "Sheriff", "Canyon", "Stagecoach", "Gunslinger", "Ranch", "Prairie"),
}
PLACES = (
    "Paris", "Tokyo", "Brooklyn", "Santa Fe", "Marseille", "Havana", "Lisbon", "Nairobi", "Oslo",
    "Memphis", "Berlin", "Sicily", "Montana", "Casablanca", "Kyoto", "Dublin", "Valparaiso", "Vienna",
)  # fmt: skip
FIRST_NAMES = (
    "Maggie", "Jack", "Lola", "Henry", "Rosa", "Eddie", "Nina", "Walter", "Ivy", "Frank", "Clara",
    "Marco", "Ruby", "Sam", "Greta", "Leo", "Hazel", "Otis", "June", "Felix",
)  # fmt: skip
NUMBERS = ("Two", "Three", "Seven", "Twelve", "Forty", "Hundred", "Thousand")
SEQUELS = ("II", "III", "2", "Reloaded", "Returns", "Forever")


@dataclass(frozen=True)
class Item:
    """One movie of the catalogue."""

    item_id: str
    title: str
    release_year: int
    creation_timestamp: int
    genres: tuple[str, ...]
    quality: float


@dataclass(frozen=True)
class User:
    """One subscriber, with the hidden taste that drives the interactions."""

    user_id: str
    gender: str
    email: str
    age: int
    preferred_genres: tuple[str, ...]
    preference_strength: float
    rating_bias: float
    first_seen: int


def _rng(seed: int, stream: str) -> random.Random:
    """One independent stream per dataset, so e.g. more interactions leave users and items unchanged."""
    # str seeds are hashed with SHA-512 by `random`, so they do not depend on PYTHONHASHSEED.
    return random.Random(f"{seed}:{stream}")


def _weighted_sample(
    rng: random.Random, population: Sequence[str], weights: Sequence[float], k: int
) -> list[str]:
    """Draw k distinct elements with probability proportional to their weights."""
    pool = list(population)
    pool_weights = list(weights)
    chosen: list[str] = []
    for _ in range(min(k, len(pool))):
        index = rng.choices(range(len(pool)), weights=pool_weights)[0]
        chosen.append(pool.pop(index))
        pool_weights.pop(index)
    return chosen


def _title(rng: random.Random, genres: Sequence[str]) -> str:
    """Compose a plausible title, flavoured by the movie's first genre."""
    noun = rng.choice(GENRE_NOUNS[genres[0]] + GENERIC_NOUNS)
    other = rng.choice(GENERIC_NOUNS + GENRE_NOUNS[rng.choice(genres)])
    adjective = rng.choice(ADJECTIVES)
    pattern = rng.randrange(10)
    if pattern == 0:
        return f"The {adjective} {noun}"
    if pattern == 1:
        return f"{noun} of the {adjective} {other}"
    if pattern == 2:
        return f"{rng.choice(FIRST_NAMES)}'s {noun}"
    if pattern == 3:
        # Titles with commas exercise CSV quoting downstream.
        return f"{adjective} {noun}, {rng.choice(ADJECTIVES)} {other}"
    if pattern == 4:
        return f"{noun}: {rng.choice(('The', 'A'))} {adjective} {other}"
    if pattern == 5:
        return f"Goodbye, {rng.choice(PLACES)}"
    if pattern == 6:
        return f"{rng.choice(NUMBERS)} {adjective} {noun}s"
    if pattern == 7:
        return f"The {noun} in {rng.choice(PLACES)} {rng.choice(SEQUELS)}"
    if pattern == 8:
        return f"{adjective} {noun}"
    return f"{rng.choice(PLACES)} {noun}"


def make_items(seed: int, count: int) -> list[Item]:
    """Build the catalogue: genres, unique titles, release years skewed to recent ones."""
    rng = _rng(seed, "items")
    weights = [GENRE_WEIGHTS[g] for g in GENRES]
    years = list(range(FIRST_RELEASE_YEAR, LAST_RELEASE_YEAR + 1))
    # Streaming catalogues lean towards recent releases.
    year_weights = [1.0 + (year - FIRST_RELEASE_YEAR) ** 1.5 / 40 for year in years]
    seen_titles: dict[str, int] = {}
    items = []
    for number in range(1, count + 1):
        genres = _weighted_sample(rng, GENRES, weights, rng.choices((1, 2, 3), weights=(35, 40, 25))[0])
        title = _title(rng, genres)
        for _ in range(10):
            if title not in seen_titles:
                break
            title = _title(rng, genres)
        if title in seen_titles:
            # Small word lists run out for big catalogues: number the remakes.
            seen_titles[title] += 1
            title = f"{title} (Part {seen_titles[title]})"
        seen_titles[title] = 1
        year = rng.choices(years, weights=year_weights)[0]
        year_start = int(datetime(year, 1, 1, tzinfo=UTC).timestamp())
        # Stop a month before the activity window ends so every item can still be watched.
        last_day = min(364, (ACTIVITY_END - 30 * DAY - year_start) // DAY)
        creation = year_start + rng.randint(0, last_day) * DAY
        items.append(
            Item(
                item_id=str(number),
                title=title,
                release_year=year,
                creation_timestamp=creation,
                genres=tuple(sorted(genres)),
                quality=rng.gauss(0, 0.4),
            )
        )
    return items


def make_users(seed: int, count: int) -> list[User]:
    """Build the subscribers, each with 1-3 preferred genres."""
    rng = _rng(seed, "users")
    weights = [GENRE_WEIGHTS[g] for g in GENRES]
    users = []
    for number in range(1, count + 1):
        preferred = _weighted_sample(rng, GENRES, weights, rng.choices((1, 2, 3), weights=(30, 45, 25))[0])
        users.append(
            User(
                user_id=str(number),
                gender=rng.choices(GENDERS, weights=GENDER_WEIGHTS)[0],
                email=f"success+{number}@{EMAIL_DOMAIN}",
                age=round(rng.triangular(18, 80, 30)),
                preferred_genres=tuple(preferred),
                preference_strength=rng.uniform(0.75, 0.92),
                rating_bias=rng.gauss(0, 0.3),
                first_seen=rng.randint(ACTIVITY_START, ACTIVITY_END - 180 * DAY),
            )
        )
    return users


def _interaction_counts(rng: random.Random, users: int, total: int, cap: int) -> list[int]:
    """Split `total` over users: at least 2 each (Personalize's minimum), long-tailed, at most `cap`."""
    weights = [rng.lognormvariate(0, 0.9) for _ in range(users)]
    extra = total - 2 * users
    scale = extra / sum(weights)
    counts = [min(cap, 2 + int(w * scale)) for w in weights]
    # Rounding and the cap leave a remainder: hand it out one by one to users with room.
    missing = total - sum(counts)
    while missing > 0:
        index = rng.randrange(users)
        if counts[index] < cap:
            counts[index] += 1
            missing -= 1
    return counts


class _Picker:
    """Popularity-weighted item draws, from the whole catalogue or from one genre."""

    def __init__(self, rng: random.Random, items: Sequence[Item]) -> None:
        self.rng = rng
        ranks = list(range(len(items)))
        rng.shuffle(ranks)
        # A mild Zipf curve: a few hits, a long tail.
        popularity = [1 / (rank + 1) ** 0.8 for rank in ranks]
        self.all: tuple[list[int], list[float]] = (
            list(range(len(items))),
            list(itertools.accumulate(popularity)),
        )
        self.by_genre: dict[str, tuple[list[int], list[float]]] = {}
        for genre in GENRES:
            members = [i for i, item in enumerate(items) if genre in item.genres]
            if members:
                cumulative = list(itertools.accumulate(popularity[i] for i in members))
                self.by_genre[genre] = (members, cumulative)

    def pick(self, genre: str | None) -> int:
        """Index of one item, from `genre` when it has items, else from the whole catalogue."""
        members, cumulative = self.by_genre.get(genre, self.all) if genre else self.all
        return members[bisect.bisect_right(cumulative, self.rng.random() * cumulative[-1])]


def iter_interactions(
    seed: int, users: Sequence[User], items: Sequence[Item], total: int
) -> Iterable[tuple[str, str, str, str, int]]:
    """Yield interaction rows, grouped by user and sorted by time within a user."""
    rng = _rng(seed, "interactions")
    cap = max(2, len(items) // 3)
    counts = _interaction_counts(rng, len(users), total, cap)
    picker = _Picker(rng, items)

    # Every item gets one interaction up front, from a user who likes one of its genres when there is one,
    # so the catalogue has no item without interactions.
    fans: dict[str, list[int]] = {genre: [] for genre in GENRES}
    for index, user in enumerate(users):
        for genre in user.preferred_genres:
            fans[genre].append(index)
    forced: dict[int, list[int]] = {}
    for item_index, item in enumerate(items):
        fan_lists: list[Sequence[int]] = [fans[genre] for genre in item.genres if fans[genre]]
        fan_lists = fan_lists or [range(len(users))]
        for _ in range(100):
            user_index = rng.choice(rng.choice(fan_lists))
            if len(forced.get(user_index, ())) < counts[user_index]:
                break
        else:
            user_index = next(u for u in range(len(users)) if len(forced.get(u, ())) < counts[u])
        forced.setdefault(user_index, []).append(item_index)

    for user_index, user in enumerate(users):
        chosen = list(forced.get(user_index, ()))
        seen = set(chosen)
        while len(chosen) < counts[user_index]:
            for _ in range(20):
                wanted = (
                    rng.choice(user.preferred_genres) if rng.random() < user.preference_strength else None
                )
                candidate = picker.pick(wanted)
                if candidate not in seen:
                    break
            else:
                # Heavy users exhaust their favourites: take the next unseen title.
                start = rng.randrange(len(items))
                candidate = next(
                    i % len(items) for i in range(start, start + len(items)) if i % len(items) not in seen
                )
            chosen.append(candidate)
            seen.add(candidate)

        liked = set(user.preferred_genres)
        rows = []
        for item_index in chosen:
            item = items[item_index]
            base = 3.9 if liked.intersection(item.genres) else 2.8
            score = base + item.quality + user.rating_bias + rng.gauss(0, 0.7)
            rating = min(5.0, max(1.0, round(score * 2) / 2))
            start_time = max(user.first_seen, item.creation_timestamp, ACTIVITY_START)
            timestamp = rng.randint(start_time, ACTIVITY_END)
            rows.append((user.user_id, item.item_id, f"{rating:.1f}", EVENT_TYPE, timestamp))
        rows.sort(key=lambda row: (row[4], int(row[1])))
        yield from rows


def _schema(name: str, fields: list[dict[str, object]]) -> dict[str, object]:
    """An Avro record schema as Personalize expects it."""
    return {
        "type": "record",
        "name": name,
        "namespace": "com.amazonaws.personalize.schema",
        "fields": fields,
        "version": "1.0",
    }


def _dataset(kind: str, schema: dict[str, object]) -> dict[str, object]:
    """One `datasets.<kind>` entry of the training config."""
    return {
        "dataset": {"serviceConfig": {"name": f"{DATASET_GROUP}-{kind}"}},
        "schema": {
            "serviceConfig": {"name": f"{DATASET_GROUP}-{kind}-schema", "domain": DOMAIN, "schema": schema}
        },
    }


def training_config() -> dict[str, object]:
    """The training config; schema fields are in the CSV column order and cover every column."""
    return {
        "datasetGroup": {"serviceConfig": {"name": DATASET_GROUP, "domain": DOMAIN}},
        "datasets": {
            "interactions": _dataset("interactions", _schema("Interactions", INTERACTIONS_FIELDS)),
            "items": _dataset("items", _schema("Items", ITEMS_FIELDS)),
            "users": _dataset("users", _schema("Users", USERS_FIELDS)),
        },
        "solutions": [
            {
                "serviceConfig": {
                    "name": SOLUTION,
                    "recipeArn": "arn:aws:personalize:::recipe/aws-item-attribute-affinity",
                },
                "batchSegmentJobs": [
                    {"serviceConfig": {"jobName": f"{DATASET_GROUP}-genres", "numResults": 50}}
                ],
            }
        ],
    }


def segment_queries() -> list[dict[str, str]]:
    """The batch segment job input: one genre query per line."""
    return [{"itemAttributes": f'ITEMS.genres = "{genre}"'} for genre in SEGMENT_GENRES]


def _phone_number(index: int) -> str:
    """The index-th fictional E.164 number: +1, a real area code, the 555 exchange."""
    area = AREA_CODES[index % len(AREA_CODES)]
    line = 100 + index // len(AREA_CODES)
    if line > 9999:
        raise ValueError(f"more than {len(AREA_CODES) * 9900} SMS endpoints are not supported")
    return f"+1{area}555{line:04d}"


def iter_endpoints(seed: int, users: Sequence[User]) -> Iterable[tuple[str, ...]]:
    """Yield Pinpoint endpoint rows: an EMAIL endpoint per user, an SMS endpoint for about a third."""
    rng = _rng(seed, "pinpoint")
    sms_count = 0
    for user in users:
        has_sms = rng.random() < 1 / 3
        # A few users opted out on one channel, so segments exercise Pinpoint's OptOut handling.
        opted_out = rng.random() < 0.02
        email_opt_out = "ALL" if opted_out and not has_sms else "NONE"
        attributes = (user.user_id, user.gender, str(user.age))
        yield (f"email-{user.user_id}", "EMAIL", user.email, email_opt_out, *attributes)
        if has_sms:
            sms_opt_out = "ALL" if opted_out else "NONE"
            yield (f"sms-{user.user_id}", "SMS", _phone_number(sms_count), sms_opt_out, *attributes)
            sms_count += 1


def _header(fields: Sequence[dict[str, object]]) -> list[str]:
    """CSV header for a schema's fields."""
    return [str(field["name"]) for field in fields]


def _write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Write UTF-8 CSV with `\\n` line endings, quoting only where needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def _write_text(path: Path, text: str) -> None:
    """Write UTF-8 text with `\\n` line endings."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)


def generate(out: Path, seed: int, users: int, items: int, interactions: int) -> None:
    """Write every dataset below `out`."""
    item_rows = make_items(seed, items)
    user_rows = make_users(seed, users)
    train = out / "personalize" / "train" / DATASET_GROUP
    _write_csv(
        train / "items.csv",
        _header(ITEMS_FIELDS),
        ((i.item_id, i.title, i.release_year, i.creation_timestamp, "|".join(i.genres)) for i in item_rows),
    )
    _write_csv(
        train / "users.csv",
        _header(USERS_FIELDS),
        ((u.user_id, u.gender, u.email, u.age) for u in user_rows),
    )
    _write_csv(
        train / "interactions.csv",
        _header(INTERACTIONS_FIELDS),
        iter_interactions(seed, user_rows, item_rows, interactions),
    )
    _write_text(train / f"{DATASET_GROUP}_config.json", json.dumps(training_config(), indent=2) + "\n")
    _write_text(
        out / "personalize" / "batch" / DATASET_GROUP / SOLUTION / "job_config.json",
        "".join(json.dumps(query) + "\n" for query in segment_queries()),
    )
    _write_csv(
        out / "pinpoint" / "endpoints.csv",
        (
            "Id",
            "ChannelType",
            "Address",
            "OptOut",
            "User.UserId",
            "User.UserAttributes.Gender",
            "User.UserAttributes.Age",
        ),
        iter_endpoints(seed, user_rows),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and generate the datasets."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=42, help="random seed (default: 42)")
    parser.add_argument("--users", type=int, default=600, help="number of users (default: 600)")
    parser.add_argument("--items", type=int, default=400, help="number of movies (default: 400)")
    parser.add_argument(
        "--interactions",
        type=int,
        default=None,
        help="number of ratings (default: 25,000 or 4 per user, whichever is larger)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent,
        help="output folder (default: the data/ folder holding this script)",
    )
    args = parser.parse_args(argv)
    interactions = args.interactions if args.interactions is not None else max(25_000, 4 * args.users)
    if args.users < 1 or args.items < 6:
        parser.error("need at least 1 user and 6 items")
    # Each user needs 2 interactions (Personalize's minimum) and rates at most a third of the catalogue.
    if not 2 * args.users <= interactions <= args.users * max(2, args.items // 3):
        parser.error("--interactions must be between 2 per user and a third of the catalogue per user")
    if interactions < args.items:
        parser.error("--interactions must be at least --items so that every item has an interaction")
    generate(args.out, args.seed, args.users, args.items, interactions)
    return 0


if __name__ == "__main__":
    sys.exit(main())
