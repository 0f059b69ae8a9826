"""Experiment 1 (eigenvalues): run the whole pipeline (gmmcollapse.eigen.experiment.run).

Usage: python sims/eigen.py [--scale smoke|quick|paper] [--out DIR] [--set KEY=VALUE ...]
Same as ``gmmcollapse eigen``; writes DIR/results.json and DIR/figures/.
"""

import sys

from gmmcollapse.cli import main

if __name__ == "__main__":
    sys.exit(main(["eigen", *sys.argv[1:]]))
