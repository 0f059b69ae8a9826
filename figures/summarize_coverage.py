"""Which articles each selection of a summarization run keeps, and where the model retrained on
it gains or loses: prints the table and draws ``summarize_coverage.png``. Reads the run's
score tables and held-out scores only (never trains).

Usage: python figures/summarize_coverage.py RUN_DIR [--feature count|summary_words]
       [--rate 0.125] [--fixed-kept] [--figures DIR]
"""

import argparse
import sys

from gmmcollapse.plots.summarize import coverage
from gmmcollapse.summarize.coverage import FEATURES, report

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", help="a finished summarize run directory")
    p.add_argument("--feature", default="count", choices=FEATURES,
                   help="article feature to bin by (default: %(default)s)")  # fmt: skip
    p.add_argument("--rate", default=None, help="selection rate of the figure (default: smallest)")
    p.add_argument("--fixed-kept", action="store_true",
                   help="the run's fixed_kept selections (a run with --set kept=N)")  # fmt: skip
    p.add_argument("--figures", default="figures/out", help="output directory")
    args = p.parse_args()
    try:
        paths, cov = coverage(args.run, args.figures, args.feature, args.rate,
                              fixed_kept=args.fixed_kept)  # fmt: skip
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(report(cov))
    print(f"figure {paths[0]}")
