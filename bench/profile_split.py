"""Where a process's CPU goes, from py-spy's collapsed stacks (`bench workers --profile DIR`, `--profile-mode cpu`).

`python -m bench.profile_split FILE...` prints, per file, the share of samples by job (the outermost frame of the
bridge's own code: which actor or route) and by where (the library the bridge's innermost frame called into, or the
bridge's own module when it called none). `split()` is what `bench workers` prints per round.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

# A frame's file path → where: the first pattern found in it names the library (checked in this order).
LIBRARIES: tuple[tuple[str, str], ...] = (
    ("kiota", "Graph SDK (kiota/msgraph)"), ("msgraph", "Graph SDK (kiota/msgraph)"),
    ("azure/", "Graph SDK (azure-identity)"), ("opentelemetry", "Graph SDK (kiota/msgraph)"),
    ("httpx", "HTTP (httpx/httpcore)"), ("httpcore", "HTTP (httpx/httpcore)"), ("h11", "HTTP (httpx/httpcore)"),
    ("sqlalchemy", "SQL (SQLAlchemy/psycopg)"), ("sqlmodel", "SQL (SQLAlchemy/psycopg)"),
    ("psycopg", "SQL (SQLAlchemy/psycopg)"), ("redis/", "Redis client"), ("structlog", "logging"),
    ("logging/", "logging"), ("prometheus_client", "metrics"), ("pydantic", "pydantic"), ("json/", "json"),
    ("dramatiq", "dramatiq"), ("asyncio", "asyncio"), ("ssl.py", "HTTP (httpx/httpcore)"),
)


def _file(frame: str) -> str:
    """`function (path:line)` → path."""
    inside = frame.rsplit("(", 1)[-1]
    return inside.rsplit(":", 1)[0]


def _library(path: str) -> str | None:
    for pattern, name in LIBRARIES:
        if pattern in path:
            return name
    return None


def classify(stack: str) -> tuple[str, str]:
    """(job, where) of one sample."""
    frames = stack.split(";")
    paths = [_file(f) for f in frames]
    own = [i for i, p in enumerate(paths) if p.startswith("app/")]
    if not own:
        first = next((lib for p in paths if (lib := _library(p)) is not None), None)
        return "(outside the bridge's code)", first or "other (stdlib, interpreter)"
    outer = frames[own[0]].split(" (")[0] + " (" + paths[own[0]] + ")"
    inner = own[-1]
    below = next((lib for p in paths[inner + 1:] if (lib := _library(p)) is not None), None)
    return outer, below or f"own code: {paths[inner]}"


def split(path: Path) -> tuple[int, Counter[str], Counter[str]]:
    """Samples, and their count by job and by where."""
    jobs: Counter[str] = Counter()
    where: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        job, place = classify(stack)
        jobs[job] += n
        where[place] += n
        total += n
    return total, jobs, where


def report(paths: list[Path], ms_per_change: float | None = None, top: int = 14) -> str:
    """The split of the samples of `paths` together; with `ms_per_change`, each share also in CPU ms per change."""
    total, jobs, where = 0, Counter[str](), Counter[str]()
    for p in paths:
        t, j, w = split(p)
        total, jobs, where = total + t, jobs + j, where + w
    if not total:
        return "    (no samples)"
    lines = []
    for title, counter in (("by job", jobs), ("by where", where)):
        lines.append(f"    {title}:")
        for name, n in counter.most_common(top):
            ms = f" = {ms_per_change * n / total:.2f} ms/change" if ms_per_change is not None else ""
            lines.append(f"      {100 * n / total:5.1f} %{ms}  {name}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report([Path(a) for a in sys.argv[1:]]))
