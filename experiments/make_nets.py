"""Write every model-zoo net to ``nets/<name>.json`` (or, with ``--check``, report drift).

Each file is ``workloads.zoo.to_json(workloads.zoo.build(name))``: pretty-printed, keys in the
builder's order, a trailing newline, so regenerating is idempotent and diffs stay readable.
``tests/test_nets_shipped.py`` fails when a shipped file and its builder disagree; run this
script after changing a builder.

    python3 experiments/make_nets.py            # (re)write nets/*.json for every zoo net
    python3 experiments/make_nets.py --check    # exit 1 if any file is missing or stale
    python3 experiments/make_nets.py resnet50   # only the named nets
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from workloads import build_graph  # noqa: E402
from workloads.zoo import build, names, to_json  # noqa: E402

NETS_DIR = REPO / "nets"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="zoo nets to write (default: all of them)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if a file is missing or differs")
    args = parser.parse_args(argv)
    selected = args.names or list(names())
    stale = []
    for name in selected:
        spec = build(name)
        text = to_json(spec)
        path = NETS_DIR / f"{name}.json"
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if args.check:
            if current != text:
                stale.append(name)
            continue
        graph = build_graph(spec, source=name)
        if current != text:
            tmp = path.with_suffix(".json.tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(path)
        state = "unchanged" if current == text else "wrote"
        print(f"{state:9s} {path.relative_to(REPO)}: {len(graph.layers)} layers, "
              f"{graph.total_params:,} params, {graph.forward_macs // graph.batch:,} MACs/image "
              f"(batch {graph.batch})")
    if stale:
        print("stale or missing: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
