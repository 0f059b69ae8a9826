"""Compare summarization runs side by side (e.g. init=pretrained and init=scratch of one scale):
each selector's ROUGE-1 difference to its run's generator, with 2 paired standard errors.
Draws from the runs' results.json only (never computes).

Usage: python figures/summarize_inits.py RUN_DIR [RUN_DIR ...] [--figures DIR]
"""

import argparse
import sys

from gmmcollapse.plots.summarize import inits

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="summarize run directories (each has results.json)")
    p.add_argument("--figures", default="figures/out", help="output directory")
    args = p.parse_args()
    try:
        paths, _ = inits(args.runs, args.figures)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"figure {paths[0]}")
