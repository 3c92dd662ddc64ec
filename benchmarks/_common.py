"""Shared pieces of the benchmark scripts: the workloads' configs, machine description, timing."""

from __future__ import annotations

import gc
import importlib.util
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SEED = REPO.parent / "shared" / "bench" / "seed_reference.py"

#: W1: eight activation kinds, cycled over the nodes (node j gets W1_KINDS[j % 8]).
W1_KINDS: list[tuple[str, dict[str, float]]] = [
    ("relu", {}),
    ("sigmoid", {}),
    ("tanh", {}),
    ("gelu", {}),
    ("swish", {"beta": 1.5}),
    ("leaky_relu", {"alpha": 0.01}),
    ("softplus", {}),
    ("mish", {}),
]


def w1_configs(n_nodes: int) -> list[tuple[str, dict[str, float]]]:
    return [W1_KINDS[j % len(W1_KINDS)] for j in range(n_nodes)]


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def llvm_cpu() -> str:
    try:
        import llvmlite.binding as llvm
        return llvm.get_host_cpu_name()
    except Exception:  # noqa: BLE001 - informational only
        return "?"


def versions(extra: tuple[str, ...] = ()) -> str:
    parts = [f"Python {platform.python_version()}"]
    for name in ("symjit_numba", "numba", "llvmlite", "numpy", "sympy", *extra):
        try:
            module = __import__(name)
            parts.append(f"{name} {module.__version__}")
        except Exception:  # noqa: BLE001 - absent optional package
            parts.append(f"{name} (not installed)")
    return ", ".join(parts)


def gxx_version() -> str | None:
    if shutil.which("g++") is None:
        return None
    out = subprocess.run(["g++", "--version"], capture_output=True, text=True).stdout
    return out.splitlines()[0] if out else "g++"


def git_state() -> str:
    """The repository's commit, and whether the working tree differs from it."""
    try:
        sha = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "not a git checkout"
    return f"commit {sha}" + (" + uncommitted changes" if dirty else "")


def machine_lines(extra: tuple[str, ...] = ()) -> list[str]:
    total = os.cpu_count()
    return [
        f"- symjit_numba source: {REPO} ({git_state()})",
        f"- CPU: {cpu_model()} (LLVM host cpu: {llvm_cpu()}), {cores()} cores usable "
        f"({total} visible), {platform.system()} {platform.release()}",
        f"- {versions(extra)}",
        f"- g++: {gxx_version() or 'not found'}",
    ]


def load_seed(path: Path, need_gxx: bool = True):
    """Import seed_reference.py from ``path``; returns (module, None) or (None, why not)."""
    if not path.is_file():
        return None, f"seed reference not found at {path}"
    if need_gxx and shutil.which("g++") is None:
        return None, "g++ not found"
    spec = importlib.util.spec_from_file_location("seed_reference", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # noqa: BLE001 - e.g. sympy missing
        return None, f"seed reference could not be imported: {type(error).__name__}: {error}"
    return module, None


#: Seconds between two blocks of :func:`time_blocks`: libgomp's and Eigen's threads spin for up to
#: milliseconds after a parallel region before they sleep.
SETTLE = 0.05
#: Seconds of untimed calls (at least ``warmup`` of them) that start each block after the pause: an
#: idle core of a virtual machine takes a while to run at full speed again.
WARM = 0.05


def time_blocks(functions: dict[str, Callable[[], object]], reps: int, rounds: int, warmup: int) -> dict[str, list[float]]:
    """Seconds per call of each function.

    The reps are split over ``rounds`` rounds; in each round every function runs ``warmup`` untimed
    calls (for WARM seconds at least) then its share of timed calls, in a block. Blocks (rather than
    interleaving calls), each after a pause of SETTLE seconds, keep one library's idle spinning
    threads (OpenMP's, XLA's) from taking a core from the next library's calls; rounds spread slow
    drifts of a shared machine over all functions.
    """
    times: dict[str, list[float]] = {name: [] for name in functions}
    per_round = [reps // rounds + (1 if r < reps % rounds else 0) for r in range(rounds)]
    names = list(functions)
    enabled = gc.isenabled()
    gc.disable()
    try:
        for r, count in enumerate(per_round):
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                f = functions[name]
                time.sleep(SETTLE)
                started = time.perf_counter()
                calls = 0
                while calls < warmup or time.perf_counter() - started < WARM:  # cores awake, caches filled
                    f()
                    calls += 1
                for _ in range(count):
                    t = time.perf_counter()
                    f()
                    times[name].append(time.perf_counter() - t)
    finally:
        if enabled:
            gc.enable()
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)


def python_executable() -> str:
    return sys.executable


def emit(lines: list[str], markdown: Path | None) -> None:
    """Print the report and, if asked, write it to ``markdown`` too."""
    report = "\n".join(lines) + "\n"
    print(report)
    if markdown:
        markdown.parent.mkdir(parents=True, exist_ok=True)
        markdown.write_text(report, encoding="utf-8")
