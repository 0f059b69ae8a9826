"""Draw the GMM figure 'linear_phase' from its results (gmmcollapse.plots.gmm.linear_phase; never computes).

Usage: python figures/gmm_linear_phase.py [--results results/gmm] [--out figures/out]
"""

from gmmcollapse.plots.gmm import figure_main

if __name__ == "__main__":
    figure_main("linear_phase")
