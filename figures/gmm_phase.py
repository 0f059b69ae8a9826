"""Draw the GMM figure 'phase' from its results (gmmcollapse.plots.gmm.phase; never computes).

Usage: python figures/gmm_phase.py [--results results/gmm] [--out figures/out]
"""

from gmmcollapse.plots.gmm import figure_main

if __name__ == "__main__":
    figure_main("phase")
