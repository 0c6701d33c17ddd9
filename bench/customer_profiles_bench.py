"""Benchmark of the Customer Profiles destination's Lambda code: build the upload file, then PUT it.

    .venv/bin/python bench/customer_profiles_bench.py                  # target: a 5M-user segment
    .venv/bin/python bench/customer_profiles_bench.py --users 500000   # quick look

Generates a segment CSV (`UserId`), a contact file shaped like the training users file (USER_ID, GENDER,
E_MAIL, AGE; 1.2x the segment's users, every 20th segment user without one) and the previous run's member file
(10% of it dropped out since), then runs each phase in a fresh process so peak RSS belongs to that phase:
- `build`: the upload-file Lambda's code
  (`lambda/destinations/customer_profiles/upload_file/upload_file.py`): segment
  dict, previous-member diff, streamed contact join, upload CSV and member file written to local files;
- `put`: the send Lambda's code (`lambda/destinations/customer_profiles/send/presigned_put.py`): the upload
  file streamed
  in 1 MiB chunks with an explicit Content-Length and the SSE-C headers to a local HTTP server on 127.0.0.1
  (in this parent process) that discards the body.
"""

from __future__ import annotations

import argparse
import base64
import http.server
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO / "lambda" / "shared" / "python"
UPLOAD_FILE_DIR = REPO / "lambda" / "destinations" / "customer_profiles" / "upload_file"
UPLOAD_DIR = REPO / "lambda" / "destinations" / "customer_profiles" / "send"


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def generate(folder: Path, users: int) -> None:
    """Write `segment.csv`, `users.csv` and `members.csv` (the previous run's members)."""
    with (folder / "segment.csv").open("w", encoding="utf-8") as out:
        out.write("UserId\n")
        out.writelines(f"user-{rank}\n" for rank in range(users))
    with (folder / "users.csv").open("w", encoding="utf-8") as out:
        out.write("USER_ID,GENDER,E_MAIL,AGE\n")
        for i in range(int(users * 1.2)):
            email = "" if i % 20 == 19 else f"user-{i}@example.com"
            out.write(f"user-{i},{'Female' if i % 2 else 'Male'},{email},{18 + i % 60}\n")
    with (folder / "members.csv").open("w", encoding="utf-8") as out:
        out.write("UserId\n")
        # The previous segment: 90% of today's users plus 10% who have dropped out since.
        out.writelines(f"user-{i}\n" for i in range(users // 10, users))
        out.writelines(f"user-{users + i}\n" for i in range(users // 10))


def phase_build(folder: Path, _url: str) -> dict[str, float]:
    """The upload-file Lambda's join and diff over local files."""
    sys.path.insert(0, str(UPLOAD_FILE_DIR))
    sys.path.insert(0, str(SHARED_DIR))  # the Lambda's layer: s3_streams
    import upload_file  # the Lambda module itself

    stats = upload_file.UploadStats()
    columns = upload_file.ContactColumns()
    with (folder / "segment.csv").open(encoding="utf-8-sig", newline="\n") as segment:
        users = upload_file.read_segment(segment, stats)
    with (folder / "members.csv").open(encoding="utf-8-sig", newline="\n") as previous:
        dropped = upload_file.dropped_members(upload_file.read_ids(previous), users, stats)
    outputs: list[Any] = []

    def open_file(name: str) -> Any:
        outputs.append((folder / f"upload-{name}.csv").open("wb"))
        return outputs[-1]

    with (
        (folder / "users.csv").open(encoding="utf-8-sig", newline="\n") as contacts,
        (folder / "next-members.csv").open("wb") as members,
    ):
        members.write(b"UserId\n")
        files = upload_file.UploadFiles(open_file)
        for columns_of_row, row in upload_file.upload_rows(users, dropped, contacts, columns, stats):
            files.add(columns_of_row, row)
            if row[-1] == "true":
                members.write(row[0].encode() + b"\n")
        for out in outputs:
            out.close()
    upload_file.count_users_without_contact(users, stats)
    return {
        "users": stats.user_count,
        "rows": stats.rows,
        "members": stats.members,
        "members_removed": stats.members_removed,
        "users_without_contact": stats.users_without_contact,
        "bytes": sum(f.size for f in files.files),
    }


def phase_put(folder: Path, url: str) -> dict[str, float]:
    """The send Lambda's streaming PUT of the upload file to the local server."""
    sys.path.insert(0, str(UPLOAD_DIR))
    import presigned_put  # the Lambda module itself

    path = folder / "upload-email-1.csv"  # the bench writes members with an email only
    length = path.stat().st_size
    token = base64.b64encode(os.urandom(32)).decode()
    with path.open("rb") as body:
        chunks = iter(lambda: body.read(presigned_put.CHUNK), b"")
        status = presigned_put.put_stream(url, chunks, length, presigned_put.sse_c_headers(token))
    return {"bytes": length, "status": status}


PHASES = {"build": phase_build, "put": phase_put}


class Discard(http.server.BaseHTTPRequestHandler):
    """Reads a PUT body in 1 MiB pieces and forgets it."""

    def do_PUT(self) -> None:
        """Drain the announced Content-Length, answer 200."""
        remaining = int(self.headers["Content-Length"])
        while remaining:
            chunk = self.rfile.read(min(remaining, 1 << 20))
            if not chunk:
                break
            remaining -= len(chunk)
        self.send_response(200 if remaining == 0 else 400)
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        """Quiet."""


def run_phase(name: str, folder: Path, url: str) -> None:
    """Child process: run one phase and print its figures as JSON."""
    started = time.perf_counter()
    figures = PHASES[name](folder, url)
    seconds = time.perf_counter() - started
    print(json.dumps({"phase": name, "seconds": seconds, "peak_rss_mb": peak_rss_mb(), **figures}))


def main() -> None:
    """Generate the data, run each phase in its own process, print a table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=5_000_000)
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--url", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        run_phase(args.phase, args.dir, args.url)
        return
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Discard)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/upload?X-Amz-Signature=bench"
    with tempfile.TemporaryDirectory(prefix="customer-profiles-bench-") as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        generate(folder, args.users)
        print(f"generated {args.users:,} segment users in {time.perf_counter() - started:.0f} s")
        print(f"{'phase':<6} {'seconds':>8} {'users/s':>12} {'MB/s':>8} {'peak RSS MB':>12}")
        for name in ("build", "put"):
            result = subprocess.run(
                [sys.executable, __file__, "--phase", name, "--dir", str(folder), "--url", url],
                check=True,
                capture_output=True,
                text=True,
            )
            figures = json.loads(result.stdout.strip().splitlines()[-1])
            seconds = figures["seconds"]
            print(
                f"{name:<6} {seconds:>8.1f} {args.users / seconds:>12,.0f} "
                f"{figures['bytes'] / seconds / 1e6:>8,.0f} {figures['peak_rss_mb']:>12,.0f}"
            )
            if name == "build":
                print(
                    f"build wrote {figures['rows']:,} rows ({figures['bytes'] / 1e6:,.0f} MB): "
                    f"{figures['members']:,} members, {figures['members_removed']:,} removed, "
                    f"{figures['users_without_contact']:,} users without contact data"
                )
    server.shutdown()


if __name__ == "__main__":
    main()
