"""Benchmark of the Pinpoint endpoint join (lambda/destinations/pinpoint/endpoint_join) against raw read+parse
speed.

    .venv/bin/python bench/pinpoint_join_bench.py                      # target: 5M users vs 10M endpoints
    .venv/bin/python bench/pinpoint_join_bench.py --users 500000 --endpoints 1000000   # quick look

Generates a segment CSV and a gzip'ed JSON-lines endpoint export (shaped like Pinpoint's) in a temp dir, then
runs each phase in a fresh process so peak RSS belongs to that phase alone:
- `gunzip`: read and decompress every export line (the I/O floor);
- `parse`: gunzip + json.loads of every line (what a naive join pays);
- `join`: the Lambda's code path (segment dict, regex pre-filter, parse matches only, write the Id CSV).
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO / "lambda" / "shared" / "python"
JOIN_DIR = REPO / "lambda" / "destinations" / "pinpoint" / "endpoint_join"
CHANNELS = ("EMAIL", "SMS", "GCM", "APNS")


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def generate(folder: Path, users: int, endpoints: int, parts: int, seed: int = 7) -> dict[str, int]:
    """Write `segment.csv` (users in rank order, 5% unknown to Pinpoint) and `export/part-N.gz`."""
    rng = random.Random(seed)
    # The project knows ~1.3x the segment's users; endpoints spread over them (1-2 per user).
    project_users = max(int(users * 1.3), 1)
    with (folder / "segment.csv").open("w", encoding="utf-8") as out:
        out.write("UserId\n")
        for rank in range(users):
            user = rank if rank % 20 else project_users + rank  # every 20th user has no endpoint
            out.write(f"user-{user}\n")
    export = folder / "export"
    export.mkdir()
    per_part = -(-endpoints // parts)
    template = (
        '{{"ApplicationId":"0123456789abcdef0123456789abcdef","Id":"{eid}","ChannelType":"{channel}",'
        '"Address":"{eid}@example.com","EndpointStatus":"{status}","OptOut":"{optout}",'
        '"EffectiveDate":"2026-11-01T10:00:00.000Z","CreationDate":"2026-10-01T10:00:00.000Z",'
        '"Demographic":{{"Locale":"en_US","Platform":"web","Timezone":"Europe/Berlin"}},'
        '"Location":{{"Country":"DE","City":"Berlin"}},'
        '"User":{{"UserId":"user-{user}","UserAttributes":{{"Gender":["Female"],"Age":["44"]}}}},'
        '"Attributes":{{"Interests":["Action","Drama"]}},"Metrics":{{"sessions":12.0}}}}\n'
    )
    written = 0
    for part in range(parts):
        with gzip.open(export / f"part-{part:04d}.gz", "wt", encoding="utf-8", compresslevel=1) as out:
            for i in range(part * per_part, min(endpoints, (part + 1) * per_part)):
                roll = rng.random()
                out.write(
                    template.format(
                        eid=f"{i:032x}",
                        channel=CHANNELS[i % len(CHANNELS)],
                        status="INACTIVE" if roll < 0.02 else "ACTIVE",
                        optout="ALL" if 0.02 <= roll < 0.05 else "NONE",
                        user=i % project_users,
                    )
                )
                written += 1
    return {"users": users, "endpoints": written, "parts": parts}


def export_files(folder: Path) -> list[Path]:
    """The export parts in order."""
    return sorted((folder / "export").glob("*.gz"))


def phase_gunzip(folder: Path) -> dict[str, float]:
    """Decompress and split every export line."""
    lines = 0
    for part in export_files(folder):
        with gzip.open(part, "rb") as unzipped:
            for _ in io.BufferedReader(unzipped, buffer_size=1 << 20):
                lines += 1
    return {"endpoints": lines}


def phase_parse(folder: Path) -> dict[str, float]:
    """Decompress and json.loads every export line, and read the segment."""
    lines = 0
    for part in export_files(folder):
        with gzip.open(part, "rb") as unzipped:
            for line in io.BufferedReader(unzipped, buffer_size=1 << 20):
                json.loads(line)
                lines += 1
    with (folder / "segment.csv").open(encoding="utf-8") as segment:
        users = sum(1 for _ in segment) - 1
    return {"endpoints": lines, "users": users}


def phase_join(folder: Path) -> dict[str, float]:
    """The Lambda's join over local files, writing the Id CSV to disk."""
    sys.path.insert(0, str(JOIN_DIR))
    sys.path.insert(0, str(SHARED_DIR))  # the Lambda's layer: s3_streams
    import join  # the Lambda module itself

    stats = join.JoinStats()
    with (folder / "segment.csv").open(encoding="utf-8-sig", newline="\n") as segment:
        users = join.read_segment_users(segment, stats)
    handles = [part.open("rb") for part in export_files(folder)]
    with (folder / "Id.csv").open("wb") as out:
        ids = join.join_endpoints(users, join.endpoint_lines(handles, stats), frozenset(), stats)
        join.write_id_csv(ids, out.write)
    for handle in handles:
        handle.close()
    join.count_users_without_endpoints(users, stats)
    return {
        "users": stats.user_count,
        "endpoints": stats.endpoint_lines,
        "endpoint_ids_written": stats.endpoint_count,
        "users_without_endpoints": stats.users_without_endpoints,
        "opted_out": stats.opted_out,
        "inactive": stats.inactive,
    }


PHASES = {"gunzip": phase_gunzip, "parse": phase_parse, "join": phase_join}


def run_phase(name: str, folder: Path) -> None:
    """Child process: run one phase and print its figures as JSON."""
    started = time.perf_counter()
    figures = PHASES[name](folder)
    seconds = time.perf_counter() - started
    print(json.dumps({"phase": name, "seconds": seconds, "peak_rss_mb": peak_rss_mb(), **figures}))


def main() -> None:
    """Generate the data, run each phase in its own process, print a table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=5_000_000)
    parser.add_argument("--endpoints", type=int, default=10_000_000)
    parser.add_argument("--parts", type=int, default=10)
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        run_phase(args.phase, args.dir)
        return
    with tempfile.TemporaryDirectory(prefix="pinpoint-join-bench-") as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        sizes = generate(folder, args.users, args.endpoints, args.parts)
        gz_mb = sum(p.stat().st_size for p in export_files(folder)) / 1e6
        print(
            f"generated {sizes['users']:,} users, {sizes['endpoints']:,} endpoints in {sizes['parts']} "
            f"gzip parts ({gz_mb:,.0f} MB compressed) in {time.perf_counter() - started:.0f} s"
        )
        print(f"{'phase':<8} {'seconds':>8} {'endpoints/s':>12} {'users/s':>12} {'peak RSS MB':>12}")
        for name in ("gunzip", "parse", "join"):
            result = subprocess.run(
                [sys.executable, __file__, "--phase", name, "--dir", str(folder)],
                check=True,
                capture_output=True,
                text=True,
            )
            figures = json.loads(result.stdout.strip().splitlines()[-1])
            seconds = figures["seconds"]
            users = figures.get("users", sizes["users"])
            print(
                f"{name:<8} {seconds:>8.1f} {figures['endpoints'] / seconds:>12,.0f} "
                f"{users / seconds:>12,.0f} {figures['peak_rss_mb']:>12,.0f}"
            )
            if name == "join":
                print(
                    f"join wrote {figures['endpoint_ids_written']:,} endpoint ids; "
                    f"{figures['users_without_endpoints']:,} users without endpoints, "
                    f"{figures['opted_out']:,} opted out, {figures['inactive']:,} inactive"
                )


if __name__ == "__main__":
    main()
