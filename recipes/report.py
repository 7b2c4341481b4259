#!/usr/bin/env python3
"""An HTML report of one or more evaluations (recipes/eval.py folders).

    python recipes/report.py results/demo/l2i/eval results/demo/piq/eval --out results/demo/report

writes `<out>/index.html` (`recipes.reporting.html_report.write_report`: the summary
table, each evaluation's classifier check, curves and clips with audio
players and spectrograms) and prints the summary table. Evaluations with the same
label (one interpreter at two thresholds, two seeds) keep a row each, told apart by
their folders; a folder given twice is refused, and so is an `--out` that cannot be
a folder (one line, exit status 2).

Authors
 * audio-interpret contributors 2026
"""

import argparse
import os
import sys

from recipes.core.run_guard import check_writable_folder, exit_status
from recipes.reporting.html_report import load_evaluation, write_report
from recipes.reporting.tables import markdown_table, summary_intervals, summary_rows


def main(argv=None):
    """Command line: merges eval folders into one report; prints its path and the summary."""
    parser = argparse.ArgumentParser(description="HTML report of recipes/eval.py folders.")
    parser.add_argument("eval_folders", nargs="+", help="folders holding metrics.json")
    parser.add_argument("--out", required=True, help="report folder (gets index.html)")
    parser.add_argument("--title", default="Interpretation report")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    given = {}  # the folder itself -> as first given
    for folder in args.eval_folders:
        real = os.path.realpath(folder)
        if real in given:
            twice = folder if given[real] == folder else f"{folder} (the same as {given[real]})"
            parser.error(f"the evaluation folder {twice} is given twice: give each folder once")
        given[real] = folder
    check_writable_folder(args.out, "--out")
    path = write_report(args.eval_folders, args.out, args.title)
    evaluations = [load_evaluation(folder) for folder in args.eval_folders]
    print(markdown_table(summary_rows(evaluations), summary_intervals(evaluations)))
    print(f"Report: {path}")
    return path


def cli(argv=None):
    """The command: `main`, with exit status 2 and one line for a report folder it cannot write."""
    return exit_status(main, argv, "recipes/report.py")


if __name__ == "__main__":
    sys.exit(cli())
