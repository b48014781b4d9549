"""Write the book's pages from results/ and build the HTML with jupyter-book, offline.

The book is a function of results/: the claims page (reproduce.report.claims_page), the methods and pilot
pages (reproduce.report.methods_page) and the environment page (reproduce.report.environment_page) are generated
from the run records, the executed notebooks (reproduce.report.book_inputs) and the declarations; the
ablation pages are the executed notebooks themselves. Nothing here trains. Generated files live in
book/generated/ and book/_toc.yml (not in git).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from reproduce.records import results, runs_index
from reproduce.report import run_pages
from reproduce.report.book_inputs import ExecutedNotebook, PresetOutcomes, all_outcomes, executed_notebooks
from reproduce.report.claims_page import claims_page, overview
from reproduce.report.environment_page import environment_page
from reproduce.report.methods_page import methods_page, pilot_page
from reproduce.verdicts import claims

GENERATED = "generated"


# ----------------------------------------------------------------------------- assembling

def write_sources(results_dir: str | Path, book_dir: str | Path) -> Path:
    """Generate the pages and the table of contents; returns the book directory."""
    book = Path(book_dir)
    out = book / GENERATED
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    executed = executed_notebooks(results_dir)
    shown = all_outcomes(results_dir, executed)
    for group in shown:
        group.forest = _save_forest(group, out)
    pages = run_pages.write(results_dir, shown, out / run_pages.RUNS)
    if results.runs_dir(results_dir).exists():
        shutil.copyfile(runs_index.write(results_dir), out / runs_index.FILE_NAME)
    (out / "claims.md").write_text(claims_page(shown, results_dir))
    (out / "overview.md").write_text(overview(results_dir, shown))
    (out / "methods.md").write_text(methods_page())
    (out / "pilot.md").write_text(pilot_page(results_dir, out))
    (out / "environment.md").write_text(environment_page(results_dir, shown))
    chapters = []
    for nb in executed:
        target = out / nb.preset / f"{nb.ablation}.ipynb"
        target.parent.mkdir(exist_ok=True)
        group = next(g for g in shown if g.preset == nb.preset)
        copy_notebook(nb, target, [o for o in group.outcomes.values() if o.claim.ablation == nb.ablation])
        chapters.append(f"{GENERATED}/{nb.preset}/{nb.ablation}")
    copy_docs(book, out)
    (book / "_toc.yml").write_text(_toc(chapters, pages))
    return book


def _save_forest(group: PresetOutcomes, out: Path) -> str:
    from reproduce.report import forest  # lazy: matplotlib is only for the pages that draw

    fig = forest.forest_plot(list(group.outcomes.values()), group.preset)
    if fig is None:
        return ""
    name = f"forest-{group.preset}.png"
    fig.savefig(out / name, dpi=110, bbox_inches="tight")
    forest.plt.close(fig)
    return name


def copy_notebook(nb: ExecutedNotebook, target: Path, outcomes: list[claims.Outcome]) -> None:
    """Copy an executed notebook into the book, with a warning on top when its outputs no longer
    match the records (other training code, other parameters, runs missing)."""
    notebook = json.loads(nb.path.read_text())
    outdated = [o for o in outcomes if o.verdict in claims.NO_VERDICT and o.verdict != "failed"]
    if outdated or nb.error:
        why = (f"it failed: {nb.error}" if nb.error else
               "its outputs were made by other code or parameters than the current ones: "
               + "; ".join(f"{o.claim.id} is {o.verdict}" for o in outdated))
        warning = {"cell_type": "markdown", "metadata": {}, "id": "book-warning",
                   "source": [f"```{{warning}}\nThis executed notebook is not current evidence: {why}. "
                              "The claims page shows what the records say now.\n```"]}
        notebook["cells"].insert(0, warning)
    for cell in notebook["cells"]:
        fold_for_readers(cell)
    target.write_text(json.dumps(notebook))


def fold_for_readers(cell: dict[str, Any]) -> None:
    """In the book a page reads as results: code inputs folded (one click away), the parameters cells
    (the notebook's and papermill's) folded whole, and what the notebook folded itself kept folded."""
    if cell.get("cell_type") != "code":
        return
    tags = cell.setdefault("metadata", {}).setdefault("tags", [])
    parameters = {"parameters", "injected-parameters"} & set(tags)
    fold = "hide-cell" if parameters else "hide-input"
    if fold not in tags and "hide-output" not in tags:
        tags.append(fold)
    elif "hide-output" in tags and not parameters:
        tags[tags.index("hide-output")] = "hide-cell"


def _toc(notebook_pages: list[str], runs: list[str] = ()) -> str:
    lines = ["# Generated by reproduce.report.book: do not edit.", "format: jb-book", "root: intro", "parts:",
             "  - caption: Results", "    chapters:", f"      - file: {GENERATED}/claims"]

    for preset in dict.fromkeys(page.split("/")[1] for page in notebook_pages):
        lines += [f"  - caption: Ablations, preset {preset} (executed notebooks)", "    chapters:"]
        lines += [f"      - file: {page}" for page in notebook_pages if page.split("/")[1] == preset]
    lines += ["  - caption: How", "    chapters:", f"      - file: {GENERATED}/methods",
              f"      - file: {GENERATED}/pilot", f"      - file: {GENERATED}/environment"]
    lines += [f"      - file: {GENERATED}/{DOCS}/{name}" for name in DOC_PAGES]
    if runs:
        lines += ["  - caption: The runs behind the verdicts", "    chapters:",
                  f"      - file: {GENERATED}/{run_pages.RUNS}/index", "        sections:"]
        lines += [f"          - file: {GENERATED}/{run_pages.RUNS}/{page}" for page in runs]
    return "\n".join(lines) + "\n"


DOCS = "docs"  # the project's docs/ pages, copied into the book beside the generated ones
DOC_PAGES = ("running", "scale-out", "gpu", "decisions", "code-map")


def copy_docs(book: Path, out: Path) -> None:
    """docs/*.md into the book, and the claims' forest plot out to docs/forest.png (the README's figure)."""
    docs = book.resolve().parent / DOCS
    (out / DOCS).mkdir(exist_ok=True)
    for name in DOC_PAGES:
        source = docs / f"{name}.md"
        text = source.read_text() if source.exists() else f"# {name}\n\n`docs/{name}.md` is not in this copy.\n"
        (out / DOCS / f"{name}.md").write_text(text)
    forests = sorted(out.glob("forest-*.png"), key=lambda path: path.name != "forest-cpu.png")
    if forests and docs.is_dir():
        shutil.copyfile(forests[0], docs / "forest.png")


def build(results_dir: str | Path = "results", book_dir: str | Path = "book") -> int:
    """Generate the pages, then run jupyter-book (never executing a notebook)."""
    book = write_sources(results_dir, book_dir)
    command = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(book)]
    finished = subprocess.run(command)
    if finished.returncode == 0:
        print(f"book: {book / '_build' / 'html' / 'index.html'}")
    return finished.returncode
