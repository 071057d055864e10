"""Keep README's Benchmarks section on the latest table: `python -m benchmarks.readme_table` (run.py does it too)."""
from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARK = "<!-- benchmark table: written from benchmarks/results/benchmark.md -->"
_SECTION = re.compile(re.escape(MARK) + r"\n.*?(?=\n\n!\[latency)", re.S)


def update_readme(table: str, readme: Path = ROOT / "README.md") -> bool:
    """Put `table` under the marker of README's Benchmarks section; False when the README has no marker."""
    text = readme.read_text(encoding="utf-8")
    if not _SECTION.search(text):
        return False
    readme.write_text(_SECTION.sub(lambda _: f"{MARK}\n{table.strip()}", text, count=1), encoding="utf-8")
    return True


def main() -> int:
    table = (ROOT / "benchmarks" / "results" / "benchmark.md").read_text(encoding="utf-8")
    if not update_readme(table):
        print("README has no benchmark table marker", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
