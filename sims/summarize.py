"""Experiment 2 (summarization): run the whole pipeline (gmmcollapse.summarize.experiment.run).

Usage: python sims/summarize.py [--scale smoke|quick|paper] [--out DIR] [--data PATH]
       [--format auto|xlsum|xsum|cnndm] [--set KEY=VALUE ...]
Same as ``gmmcollapse summarize``; writes DIR/results.json and DIR/figures/.
"""

import sys

from gmmcollapse.cli import main

if __name__ == "__main__":
    sys.exit(main(["summarize", *sys.argv[1:]]))
