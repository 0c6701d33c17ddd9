"""`python -m contextual_targeting.diagrams [--check]`: (re)draw docs/diagrams/ from the synthesized stack."""

from __future__ import annotations

import sys

from contextual_targeting.diagrams.generate import DIAGRAMS_DIR, render, stale, synthesized_templates, write


def main(argv: list[str]) -> int:
    """Write the drawings; with --check, only say which ones are out of date (exit 1 if any)."""
    pages = render(synthesized_templates())
    if "--check" in argv:
        outdated = stale(pages)
        for name in outdated:
            print(f"out of date: {DIAGRAMS_DIR / name} (run `make diagrams`)")
        return 1 if outdated else 0
    changed = write(pages)
    print(f"{len(pages)} diagram files in {DIAGRAMS_DIR}: {len(changed)} changed")
    for name in changed:
        print(f"  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
