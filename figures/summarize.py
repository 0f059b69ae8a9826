"""Draw the two summarization figures from a finished run's results.json (never computes).

Usage: python figures/summarize.py [--out RUN_DIR] [--figures DIR]
"""

import sys

from gmmcollapse.cli import main

if __name__ == "__main__":
    sys.exit(main(["summarize", "--figures-only", *sys.argv[1:]]))
