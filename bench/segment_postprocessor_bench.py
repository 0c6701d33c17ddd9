#!/usr/bin/env python3
"""Benchmark the segment post-processor's streaming split against plain read + json.loads of the same input.

    .venv/bin/python bench/segment_postprocessor_bench.py --users 5000000 --queries 1

Generates a batch segment job output of Q query lines x U distinct user ids (7 digits by default, ~11 bytes
each in JSON: a 5M-user line is ~55 MB; `--id-chars` pads them), then measures, each in a fresh Python
process so that peak RSS is its own:

- `read only`       : read the file in 1 MiB chunks (the I/O floor);
- `read+json.loads` : read each line whole and json.loads it (what a non-streaming Lambda would do);
- `streaming split` : the Lambda's own code (`SegmentSplitter.split`) writing CSV parts to a discarding
                      S3 stand-in (multipart part size as deployed), i.e. everything but the network.

Prints seconds, users/s and peak RSS (resource.getrusage ru_maxrss) for each, plus the RSS of an idle
interpreter with the same imports, and the ratio of streaming to read+json.loads throughput.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
LAMBDA_DIR = REPO / "lambda" / "segments" / "split"
SHARED_DIR = LAMBDA_DIR.parent / "shared" / "python"
BLOCK = 100_000  # ids generated per write, so generating a 5M-user line needs no 55 MB string


def generate(path: Path, users: int, queries: int, id_chars: int = 7) -> int:
    """Write Q lines of U distinct users each in Personalize's output shape; return the file size in bytes."""
    with path.open("w", encoding="utf-8") as out:
        for query in range(queries):
            attributes = json.dumps(f'ITEMS.genres = "Genre {query}"')
            out.write(f'{{"input": {{"itemAttributes": {attributes}}}, "output": {{"usersList": [')
            for start in range(0, users, BLOCK):
                ids = range(1_000_000 + start, 1_000_000 + min(start + BLOCK, users))
                out.write(("" if start == 0 else ", ") + ", ".join(f'"{i:0{id_chars}d}"' for i in ids))
            out.write(']}, "error": null}\n')
    return path.stat().st_size


class DiscardingS3:
    """Stands in for the S3 client: accepts puts and parts, keeps only their sizes."""

    def __init__(self) -> None:
        self.bytes = 0
        self.parts = 0

    def put_object(self, *, Body: bytes, **_: Any) -> dict[str, Any]:  # noqa: N803 - boto3's spelling
        self.bytes += len(Body)
        return {}

    def create_multipart_upload(self, **_: Any) -> dict[str, Any]:
        return {"UploadId": "u"}

    def upload_part(self, *, Body: bytes, PartNumber: int, **_: Any) -> dict[str, Any]:  # noqa: N803
        self.bytes += len(Body)
        self.parts += 1
        return {"ETag": f'"{PartNumber}"'}

    def complete_multipart_upload(self, **_: Any) -> dict[str, Any]:
        return {}

    def abort_multipart_upload(self, **_: Any) -> dict[str, Any]:
        return {}


def measure(mode: str, path: Path) -> dict[str, Any]:
    """Run one mode in this process and return its figures."""
    sys.path.insert(0, str(LAMBDA_DIR))
    sys.path.insert(0, str(SHARED_DIR))  # the Lambda's layer: s3_streams
    from segment_parser import CHUNK_SIZE, iter_chunks
    from segment_store import JobInfo, SegmentSplitter

    idle_rss = _peak_rss_mb()
    users = 0
    extra: dict[str, Any] = {}
    start = time.perf_counter()
    if mode == "read":
        with path.open("rb") as stream:
            for chunk in iter_chunks(stream, CHUNK_SIZE):
                users += chunk.count(b'",')  # a rough id count, only to touch the bytes
    elif mode == "json":
        with path.open("rb") as stream:
            for line in stream:
                users += len(json.loads(line)["output"]["usersList"])
    elif mode == "stream":
        s3 = DiscardingS3()
        job = JobInfo(job_arn="arn", job_name="bench-job", dataset_group_name="bench", output_uri="s3://b/p/")
        splitter = SegmentSplitter(s3, job, bucket="b", prefix="segments/")
        with path.open("rb") as stream:
            splitter.split(path.name, iter_chunks(stream, CHUNK_SIZE))
        splitter.commit()  # segments are staged until the whole job was read
        users = sum(r.user_count for r in splitter.results)
        bad = [r for r in splitter.results if r.status != "READY"]
        assert not bad, bad
        extra = {"csv_mb": round(s3.bytes / 1e6, 1), "parts": s3.parts}
    else:
        raise ValueError(mode)
    seconds = time.perf_counter() - start
    return {
        "mode": mode,
        "users": users,
        "seconds": seconds,
        "idle_rss_mb": idle_rss,
        "peak_rss_mb": _peak_rss_mb(),
        **extra,
    }


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def run_child(mode: str, path: Path, repeat: int) -> dict[str, Any]:
    """Best of `repeat` runs, each in a fresh interpreter."""
    best: dict[str, Any] | None = None
    for _ in range(repeat):
        done = subprocess.run(
            [sys.executable, __file__, "--measure", mode, str(path)],
            check=True,
            capture_output=True,
            text=True,
        )
        figures = json.loads(done.stdout)
        if best is None or figures["seconds"] < best["seconds"]:
            best = figures
    assert best is not None
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=1_000_000, help="user ids per query line")
    parser.add_argument("--queries", type=int, default=1, help="query lines (Personalize allows 10)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per mode; the fastest counts")
    parser.add_argument(
        "--id-chars", type=int, default=7, help="characters per user id (zero-padded; Personalize allows 256)"
    )
    parser.add_argument("--measure", nargs=2, metavar=("MODE", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure[0], Path(args.measure[1]))))
        return

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "job_config.json.out"
        size = generate(path, args.users, args.queries, args.id_chars)
        total = args.users * args.queries
        print(
            f"input: {args.queries} query line(s) x {args.users:,} users = {total:,} users, "
            f"{size / 1e6:.1f} MB ({size / 1e6 / args.queries:.1f} MB a line)"
        )
        print(f"{'mode':<18}{'seconds':>9}{'users/s':>14}{'peak RSS MB':>13}{'idle RSS MB':>13}")
        results = {}
        for mode, label in (
            ("read", "read only"),
            ("json", "read+json.loads"),
            ("stream", "streaming split"),
        ):
            figures = run_child(mode, path, args.repeat)
            results[mode] = figures
            rate = total / figures["seconds"]
            print(
                f"{label:<18}{figures['seconds']:>9.2f}{rate:>14,.0f}"
                f"{figures['peak_rss_mb']:>13.1f}{figures['idle_rss_mb']:>13.1f}"
            )
        assert results["json"]["users"] == total == results["stream"]["users"], results
        ratio = results["json"]["seconds"] / results["stream"]["seconds"]
        print(
            f"streaming throughput = {ratio:.2f} x read+json.loads; "
            f"CSV written {results['stream']['csv_mb']} MB in {results['stream']['parts']} part(s)"
        )


if __name__ == "__main__":
    main()
