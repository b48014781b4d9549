"""Pack what a session brought about into one archive: `python3 -m reproduce.tools.pack OUT.tgz [RESULTS_DIR]`.

What a lent GPU sends home (scripts/gpu_session.sh calls this last, whatever happened before): the
finished run records (complete or diverged; a "running" record of a run the budget stopped is left
out, since its checkpoint dies with the machine), the grid's records, the bench records, the
measures of final weights and the session's log. Paths inside the archive start with the results
folder's name, so `tar -xzf results.tgz` in the project root puts every file where it belongs.

Nothing here imports torch: it packs even where the training code would not import.
"""

from __future__ import annotations

import sys
import tarfile
from pathlib import Path

from reproduce.records.results import record_files

FINISHED = ("complete", "diverged")
FOLDERS = ("grid", "bench", "analysis", "sessions")  # packed whole: their files are written atomically


def finished_records(results_dir: Path) -> list[Path]:
    """Run records whose status says the run is over; one that does not parse is left out."""
    return [path for path, record, _ in record_files(results_dir) if record and record.get("status") in FINISHED]


def pack(archive: Path, results_dir: Path) -> list[Path]:
    """Write the archive; returns the files it holds."""
    files = finished_records(results_dir)
    for folder in FOLDERS:
        files += sorted(p for p in (results_dir / folder).rglob("*") if p.is_file() and not p.name.endswith(".tmp"))
    archive.parent.mkdir(parents=True, exist_ok=True)
    base = results_dir.parent
    with tarfile.open(archive, "w:gz") as tar:
        for path in files:
            tar.add(path, arcname=str(path.relative_to(base)))
    return files


def main(argv: list[str]) -> int:
    if not 1 <= len(argv) <= 2:
        print("usage: python3 -m reproduce.tools.pack OUT.tgz [RESULTS_DIR]", file=sys.stderr)
        return 2
    archive, results_dir = Path(argv[0]), Path(argv[1] if len(argv) > 1 else "results").absolute()
    files = pack(archive, results_dir)
    runs = sum(1 for f in files if f.parent.name == "runs")
    print(f"packed {len(files)} files ({runs} finished run records) into {archive}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
