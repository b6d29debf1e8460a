"""Summarise a pyinstrument session of a migration run: where the time goes.

    .venv/bin/python -m benchmarks.profile_summary benchmarks/results/<date>-<N>-profile-full.pyisession

Prints (1) the inclusive time of the pipeline's own functions (ice_pipeline/*,
recursion counted once) and (2) the functions with the most self time
(libraries included), each as seconds and share of the whole run.
"""

from __future__ import annotations

import argparse
from collections import defaultdict

from pyinstrument.session import Session


def _key(frame) -> tuple[str, str, int]:
    return (frame.function, frame.file_path_short or frame.file_path or "?", frame.line_no or 0)


def _walk(frame, stack: frozenset, inclusive: dict, self_time: dict) -> None:
    if frame.is_synthetic:
        # pyinstrument's "[self]" leaves are already in the parent's total_self_time
        # (for a blocking C call such as a COPY: the time waiting for the server).
        return
    key = _key(frame)
    self_time[key] += frame.total_self_time
    if key not in stack:
        inclusive[key] += frame.time
        stack = stack | {key}
    for child in frame.children:
        _walk(child, stack, inclusive, self_time)


def summarise(path: str, top: int = 25, own: str = "ice_pipeline") -> str:
    session = Session.load(path)
    root = session.root_frame()
    total = session.duration
    inclusive: dict = defaultdict(float)
    self_time: dict = defaultdict(float)
    _walk(root, frozenset(), inclusive, self_time)
    lines = [
        f"profile {path}: {total:.1f} s sampled, {session.sample_count} samples",
        "",
        f"Pipeline functions ({own}/*), inclusive time:",
        "",
        "| function | file:line | seconds | share |",
        "|---|---|---:|---:|",
    ]
    mine = [(k, v) for k, v in inclusive.items() if own in (k[1] or "")]
    for (function, file, line), seconds in sorted(mine, key=lambda kv: -kv[1])[:top]:
        lines.append(f"| `{function}` | {file}:{line} | {seconds:.2f} | {seconds / total:.0%} |")
    lines += [
        "",
        "Most self time (any code):",
        "",
        "| function | file:line | seconds | share |",
        "|---|---|---:|---:|",
    ]
    for (function, file, line), seconds in sorted(self_time.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"| `{function}` | {file}:{line} | {seconds:.2f} | {seconds / total:.0%} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("session", nargs="+", help="pyisession files written by --profile")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    for path in args.session:
        print(summarise(path, args.top))


if __name__ == "__main__":
    main()
