"""Regenerate the validation table at the end of docs/VALIDATION.md, or check that it is current.

The block between ``<!-- validate:begin -->`` and ``<!-- validate:end -->`` is the output of
``paleosim validate --with-paleo --format markdown``; this script writes it there (about 3
minutes on a 2-core machine). ``tests/test_published.py`` checks every row the fast test run
simulates against the block, and the slow rows in their own slow tests, so the document cannot
drift from the code.

    python3 experiments/make_validation_doc.py           # rewrite the block
    python3 experiments/make_validation_doc.py --check   # exit 1 if the block is not current
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from simulator.commands.validate import DEFAULT_PALEO_NETS, _format  # noqa: E402
from simulator.validation import load_reference, run_validation  # noqa: E402

DOC = REPO / "docs" / "VALIDATION.md"
README = REPO / "README.md"
BEGIN, END = "<!-- validate:begin -->", "<!-- validate:end -->"
#: The README's copy of the overall figures (the summary rows of the table, verbatim).
SUMMARY_BEGIN, SUMMARY_END = "<!-- validation-summary:begin -->", "<!-- validation-summary:end -->"


def block() -> str:
    table = load_reference()
    nets = DEFAULT_PALEO_NETS if DEFAULT_PALEO_NETS.is_dir() else None
    result = run_validation(table=table, paleo_nets=nets)
    return _format(result, table, "markdown", with_paleo=nets is not None)


def splice(text: str, new_block: str, begin: str = BEGIN, end: str = END) -> str:
    start, stop = text.index(begin) + len(begin), text.index(end)
    return text[:start] + "\n" + new_block + text[stop:]


def summary_lines(doc_block: str) -> str:
    """The overall rows of the block's error summary and its Paleo comparison's mean, with the
    table headers: what the README shows."""
    lines = doc_block.splitlines()
    keep = ["| scope | rows | median \\|error\\| | max \\|error\\| |", "|---|---|---|---|"]
    keep += [line for line in lines if line.startswith("| overall")]
    paleo = [line for line in lines if line.startswith("| mean \\|error\\|")]
    out = "\n".join(keep) + "\n"
    if paleo:
        import re
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", paleo[0].strip().strip("|"))]
        out += (f"\nPaleo's case studies (8 rows), mean absolute error: paleosim {cells[3]}, "
                f"Paleo's estimator at its best scheme per row {cells[6]}.\n")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 unless docs/VALIDATION.md holds the current table")
    args = parser.parse_args()
    text = DOC.read_text(encoding="utf-8")
    fresh = block()
    new = splice(text, fresh)
    readme = README.read_text(encoding="utf-8")
    new_readme = splice(readme, summary_lines(fresh), SUMMARY_BEGIN, SUMMARY_END)
    if args.check:
        if new != text or new_readme != readme:
            print("docs/VALIDATION.md or README.md is out of date: run python3 experiments/"
                  "make_validation_doc.py", file=sys.stderr)
            return 1
        print("docs/VALIDATION.md and README.md hold the current table")
        return 0
    from simulator.atomic import write_text_atomic
    for path, old, content in ((DOC, text, new), (README, readme, new_readme)):
        if content != old:
            write_text_atomic(path, content)
        print(f"{'wrote' if content != old else 'already current:'} {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
