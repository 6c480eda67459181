"""Wall time of `greenops validate` on N policy files, next to `check-jsonschema` on the same files and schema.

Run: .venv/bin/python bench/validate_speed.py [--files 100] [--repeat 7]
Both are measured as whole commands (interpreter start-up included), as a pre-commit hook runs them.
"""

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
SCHEMA = PROJECT / "schemas" / "retrainingpolicy.schema.json"


def make_policies(folder: Path, count: int) -> list[Path]:
    """``count`` valid policies: the examples, renamed so names stay unique."""
    examples = sorted((PROJECT / "policies").glob("*.yaml"))
    files = []
    for index in range(count):
        source = examples[index % len(examples)]
        name = source.stem
        text = source.read_text().replace(f"name: {name}", f"name: {name}-{index:03d}", 1)
        path = folder / f"{name}-{index:03d}.yaml"
        path.write_text(text)
        files.append(path)
    return files


def timed(command: list[str], repeat: int) -> tuple[float, float]:
    """Median and minimum wall time in seconds; the command must succeed."""
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        samples.append(time.perf_counter() - began)
    return statistics.median(samples), min(samples)


def tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent))
    if not found:
        raise SystemExit(f"{name} not found next to {sys.executable}; run `make install` first")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        files = [str(p) for p in make_policies(Path(scratch), args.files)]
        rows = [
            ("greenops validate (schema + cron/duration/bounds/duplicate checks, line numbers)",
             [tool("greenops"), "validate", scratch]),
            ("check-jsonschema --schemafile (schema only)",
             [tool("check-jsonschema"), "--schemafile", str(SCHEMA), *files]),
        ]
        print(f"{args.files} policy files, {args.repeat} runs each, Python {sys.version.split()[0]}\n")
        print("| command | median s | min s |\n|---|---:|---:|")
        for label, command in rows:
            median, best = timed(command, args.repeat)
            print(f"| {label} | {median:.3f} | {best:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
