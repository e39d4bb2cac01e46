"""How long the command line takes to start: `kpisync --help` and `python -c "import kpisync.cli"`,
each run N times in a fresh process, printed as the median wall time and the median CPU time
(user + system) of the child; the CPU time hardly moves with the machine's load, the wall time
does, so the load average is printed beside them.

    python benchmarks/cli_startup.py [--runs 21] [--nice -10] [--before main] [--save]

`--before REF` also measures the tree of a git ref (e.g. main) unpacked into a temporary folder
and put first on PYTHONPATH, runs interleaved with this tree's so both see the same load, and
prints the ratio. `--nice N` runs the children at that niceness (below 0 needs root), so that a
CPU hog elsewhere on the machine weighs less on the figure. Then the ten costliest imports of
`kpisync --help` by `-X importtime` (cumulative seconds). `import typer+rich_utils` is the floor:
what Typer's rich help costs by itself.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

from results import keep_output  # benchmarks/, on the path as a script

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = str(Path(sys.executable).with_name("kpisync"))  # the console script pip installed
HELP = [SCRIPT, "--help"]
IMPORT = [sys.executable, "-c", "import kpisync.cli"]
# What Typer's rich help costs by itself: the floor under `kpisync --help`.
TYPER = [sys.executable, "-c", "import typer, typer.rich_utils"]


@dataclass(frozen=True)
class Tree:
    """A source tree to measure: its name and the folder put first on PYTHONPATH (None: as
    installed)."""

    name: str
    path: Path | None


@dataclass(frozen=True)
class Timing:
    wall: float
    cpu: float


def run_once(arguments: Sequence[str], tree: Tree, niceness: int) -> Timing:
    """One fresh interpreter running `arguments`: its wall time and its CPU time."""
    env = dict(os.environ, COLUMNS="100")
    if tree.path is not None:
        env["PYTHONPATH"] = str(tree.path)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        arguments,
        env=env,
        stdout=subprocess.DEVNULL,
        check=True,
        cwd=tree.path or ROOT,
        preexec_fn=nicer(niceness),
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return Timing(wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))


def nicer(niceness: int) -> Callable[[], None]:
    def apply() -> None:
        if niceness:
            os.nice(niceness)

    return apply


def unpack(ref: str, into: Path) -> Path:
    """The tree of git `ref`, as files in `into`."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", ref], cwd=ROOT, check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} CPUs"


def measure(trees: list[Tree], runs: int, niceness: int) -> dict[tuple[str, str], list[Timing]]:
    """Every (tree, command) `runs` times, interleaved, after one run each that is not counted
    (it writes the tree's bytecode caches)."""
    commands = (
        ("kpisync --help", HELP),
        ("import kpisync.cli", IMPORT),
        ("import typer+rich_utils", TYPER),
    )
    for tree in trees:
        for _, arguments in commands:
            run_once(arguments, tree, niceness)
    timings: dict[tuple[str, str], list[Timing]] = {}
    for _ in range(runs):
        for tree in trees:
            for label, arguments in commands:
                timings.setdefault((tree.name, label), []).append(
                    run_once(arguments, tree, niceness)
                )
    return timings


def import_costs(tree: Tree, top: int = 10) -> list[tuple[int, str]]:
    """The `top` costliest imports of `kpisync --help`, cumulative microseconds."""
    env = dict(os.environ, COLUMNS="100")
    if tree.path is not None:
        env["PYTHONPATH"] = str(tree.path)
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *HELP],
        env=env,
        text=True,
        capture_output=True,
        check=True,
        cwd=tree.path or ROOT,
    )
    costs = []
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "cumulative" not in line:
            _, cumulative, name = line.split("|")
            costs.append((int(cumulative), name.rstrip()))
    return sorted(costs, reverse=True)[:top]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python benchmarks/cli_startup.py")
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--nice", type=int, default=0, help="niceness of the children")
    parser.add_argument("--before", metavar="REF", help="also measure this git ref's tree")
    parser.add_argument("--save", action="store_true")
    args = parser.parse_args(argv)
    keep_output(args.save, "cli", "startup")
    with tempfile.TemporaryDirectory(prefix="kpisync-cli-startup-") as folder:
        trees = [Tree("this tree", None)]
        if args.before:
            trees.insert(0, Tree(args.before, unpack(args.before, Path(folder))))
        print(f"{args.runs} runs each, niceness {args.nice}; before: {load()}")
        timings = measure(trees, args.runs, args.nice)
        print(f"after: {load()}")
        print(
            f"{'tree':<12} {'command':<24} {'median wall':>12} {'min wall':>9} {'median CPU':>11}"
        )
        for (name, label), found in timings.items():
            print(
                f"{name:<12} {label:<24} {statistics.median(t.wall for t in found):>11.3f}s "
                f"{min(t.wall for t in found):>8.3f}s "
                f"{statistics.median(t.cpu for t in found):>10.3f}s"
            )
        if args.before:
            for label in ("kpisync --help", "import kpisync.cli"):
                old, new = timings[(args.before, label)], timings[("this tree", label)]
                wall = statistics.median(t.wall for t in old) / statistics.median(
                    t.wall for t in new
                )
                cpu = statistics.median(t.cpu for t in old) / statistics.median(t.cpu for t in new)
                print(f"{label}: {args.before} / this tree = {wall:.1f}x wall, {cpu:.1f}x CPU")
        for tree in trees:
            print(f"costliest imports of `kpisync --help` ({tree.name}), cumulative:")
            for micros, name in import_costs(tree):
                print(f"  {micros / 1e6:6.3f}s {name.strip()}")


if __name__ == "__main__":
    main()
