"""`paleosim validate`: run the published-result reference table, print predicted against
published, the error per row, per source and overall, and Paleo's prediction beside ours."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from simulator.commands._output import render, write_atomic
from simulator.errors import SpecError

FORMATS = ("table", "csv", "json", "markdown")
#: Paleo's net files, looked for in the shared data folder beside the repository.
DEFAULT_PALEO_NETS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "paleo" / "nets"


def register(sub) -> None:
    p = sub.add_parser(
        "validate", help="compare simulations with published results (reference table)",
        description="Simulate every row of the project's reference table of published "
                    "distributed-training results (simulator/validation/reference.json: "
                    "FireCaffe, TensorFlow, MXNet, Krizhevsky's one weird trick, "
                    "tf_cnn_benchmarks on DGX-1, Horovod, Megatron-LM, PTD-P, NCCL) with the "
                    "shipped nets, calibrated devices and topology presets, and print predicted "
                    "against published, the relative error and verdict per row (tolerance 15% "
                    "for high-confidence rows, 25% for medium, a trend check for low), the "
                    "median and maximum absolute error per source and overall, and with "
                    "--with-paleo Paleo's analytical prediction beside ours. Known misses are "
                    "shown with their error and reason; a known miss that lands inside its "
                    "tolerance is reported ('now passes'), never a failure. --claims checks "
                    "the claim behind each known miss's reason instead. Exit code 1 when a row "
                    "fails (outside its tolerance, a broken trend or a lower bound not "
                    "reached) or a claim no longer holds, 2 for bad input. See "
                    "docs/VALIDATION.md.")
    p.add_argument("--rows", metavar="PATTERN", default=None,
                   help="only rows whose id matches these glob patterns, comma-separated "
                        "(e.g. 'tfbench-*,horovod-*'); default: every row")
    p.add_argument("--with-paleo", action="store_true",
                   help="add Paleo's prediction (its estimator on Paleo's own nets, scheme "
                        "closest to the published value) where Paleo covers the case")
    p.add_argument("--paleo-nets", metavar="DIR", default=None,
                   help="folder with Paleo's net files (default: ../shared/data/paleo/nets "
                        "beside the repository, when present)")
    p.add_argument("--output", metavar="PATH", default=None,
                   help="also write the output to PATH (written whole or not at all)")
    p.add_argument("--claims", action="store_true",
                   help="check the claim behind the reason of every known miss selected by "
                        "--rows (simulator/validation/claims.py) and print whether it holds, "
                        "with the figures")
    p.add_argument("--format", choices=FORMATS, default="table",
                   help="table (default), csv (the per-row table), json (rows, summary, Paleo "
                        "comparison, notes), markdown (for docs/VALIDATION.md)")
    p.set_defaults(func=run)


def run(args) -> int:
    from simulator.validation import load_reference, run_validation

    nets = None
    notes = []
    if args.with_paleo:
        nets = Path(args.paleo_nets) if args.paleo_nets else DEFAULT_PALEO_NETS
        if not nets.is_dir():
            if args.paleo_nets:
                raise SpecError("not a folder", field="--paleo-nets", value=args.paleo_nets)
            notes.append(f"Paleo's predictions omitted: Paleo's nets not found at {nets}.")
            nets = None
    table = load_reference()
    if args.claims:
        return _claims(table, args)
    result = run_validation(rows=args.rows, table=table, paleo_nets=nets)
    if not args.with_paleo:
        result.notes = []
    result.notes = notes + result.notes
    text = _format(result, table, args.format, with_paleo=args.with_paleo and nets is not None)
    if args.output:
        write_atomic(args.output, text)
    print(text, end="")
    return 1 if result.failed else 0


def _claims(table, args) -> int:
    from simulator.validation.claims import Context, evaluate
    rows = [r for r in table.select(args.rows) if r.status == "known_miss"]
    context = Context(table)
    claims = [evaluate(r.id, context) for r in rows]
    frame = pd.DataFrame({"id": [c.row for c in claims],
                          "holds": ["yes" if c.holds else "NO" for c in claims],
                          "evidence": [c.evidence for c in claims]})
    fmt = "table" if args.format == "markdown" else args.format
    text = render(frame, fmt) if len(frame) else "# no known misses among the selected rows\n"
    if args.output:
        write_atomic(args.output, text)
    print(text, end="")
    return 0 if all(c.holds for c in claims) else 1


def _pct(x: float) -> str:
    return "" if pd.isna(x) else f"{x:+.1%}"


def _num(x: float) -> str:
    if pd.isna(x):
        return ""
    return f"{x:.4g}" if abs(x) < 1e5 else f"{x:.0f}"


def _display_rows(rows: pd.DataFrame, with_paleo: bool) -> pd.DataFrame:
    out = pd.DataFrame({
        "id": rows["id"], "metric": rows["metric"], "unit": rows["unit"],
        "conf": rows["confidence"], "role": rows["role"].map({"calibration": "calib",
                                                               "validation": ""}),
        "published": rows["published"].map(_num), "predicted": rows["predicted"].map(_num),
        "error": rows["error"].map(_pct),
        "tolerance": rows["tolerance"].map(lambda t: "trend" if pd.isna(t) else f"{t:.0%}"),
        "verdict": rows["verdict"]})
    if rows["algorithm"].astype(bool).any():  # the algorithm a collective row ran
        out["algorithm"] = rows["algorithm"]
    if with_paleo:
        out["paleo"] = rows["paleo"].map(_num)
        out["paleo_error"] = rows["paleo_error"].map(_pct)
        out["paleo_scheme"] = rows["paleo_scheme"]
    return out


def _display_summary(summary: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"scope": summary["scope"], "rows": summary["rows"],
                         "median |error|": summary["median_abs_error"].map(
                             lambda x: "" if pd.isna(x) else f"{x:.1%}"),
                         "max |error|": summary["max_abs_error"].map(
                             lambda x: "" if pd.isna(x) else f"{x:.1%}")})


def _display_paleo(paleo: pd.DataFrame) -> pd.DataFrame:
    # the last row holds mean absolute errors: no sign
    last = paleo["id"] == "mean |error|"

    def errors(column: str) -> list[str]:
        return [("" if pd.isna(x) else f"{x:.1%}" if is_mean else f"{x:+.1%}")
                for x, is_mean in zip(paleo[column], last)]

    return pd.DataFrame({"id": paleo["id"], "published": paleo["published"].map(_num),
                         "paleosim": paleo["predicted"].map(_num),
                         "paleosim error": errors("error"),
                         "Paleo": paleo["paleo"].map(_num), "Paleo scheme": paleo["paleo_scheme"],
                         "Paleo error": errors("paleo_error"), "closer": paleo["closer"]})


def _reasons(rows: pd.DataFrame) -> list[str]:
    out = []
    for rec in rows.to_dict("records"):
        if rec["status"] != "active":
            label = "known miss" if rec["status"] == "known_miss" else "pending"
            out.append(f"{rec['id']} ({label}): {rec['reason']}")
    return out


def _format(result, table, fmt: str, *, with_paleo: bool) -> str:
    rows = result.rows
    if fmt == "csv":
        return rows.to_csv(index=False)
    if fmt == "json":
        payload = {"table": table.path, "failed": result.failed,
                   "rows": _records(rows), "summary": _records(result.summary),
                   "paleo": _records(result.paleo) if with_paleo else [],
                   "notes": result.notes}
        return json.dumps(payload, indent=2, default=_jsonable) + "\n"
    display = _display_rows(rows, with_paleo)
    summary = _display_summary(result.summary)
    paleo = _display_paleo(result.paleo) if with_paleo and len(result.paleo) else None
    reasons = _reasons(rows)
    from simulator.validation.runner import FAILING
    failing = rows[rows["verdict"].isin(FAILING)]["id"]
    verdict = (f"FAILED: {', '.join(failing)}" if len(failing)
               else "every judged row is within its tolerance or a known miss")
    if result.now_passing:
        verdict += ("; known misses that now pass (update their status in the table): "
                    + ", ".join(result.now_passing))
    if fmt == "markdown":
        parts = [_markdown(display), "", _markdown(summary)]
        if paleo is not None:
            parts += ["", _markdown(paleo)]
        parts += [""] + [f"- **{r.split(' (')[0]}** ({r.split(' (', 1)[1]}" for r in reasons]
        parts += [""] + [f"Note: {n}" for n in result.notes] + ["", f"Result: {verdict}."]
        return "\n".join(parts).rstrip() + "\n"
    parts = [f"# {len(rows)} rows of {table.path}", render(display, "table"),
             "# error per source and overall (high and medium confidence)",
             render(summary, "table")]
    if paleo is not None:
        parts += ["# Paleo's case studies: paleosim against Paleo's estimator",
                  render(paleo, "table")]
    if reasons:
        parts += ["# known misses and pending rows"] + [f"- {r}" for r in reasons] + [""]
    parts += [f"# note: {n}" for n in result.notes]
    parts.append(f"# result: {verdict}")
    return "\n".join(p.rstrip("\n") for p in parts) + "\n"


def _markdown(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(str(c).replace("|", "\\|") for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    lines = [header, rule]
    for rec in frame.itertuples(index=False):
        lines.append("| " + " | ".join(str(v).replace("|", "\\|") for v in rec) + " |")
    return "\n".join(lines)


def _records(frame: pd.DataFrame) -> list[dict]:
    """Rows as JSON-ready dicts; NaN (no value) becomes null."""
    return [{k: (None if isinstance(v, float) and v != v else v) for k, v in rec.items()}
            for rec in frame.to_dict(orient="records")]


def _jsonable(value):
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
