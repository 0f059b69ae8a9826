"""Draw the GMM figure 'rounds' from its results (gmmcollapse.plots.gmm.rounds; never computes).

Usage: python figures/gmm_rounds.py [--results results/gmm] [--out figures/out]
"""

from gmmcollapse.plots.gmm import figure_main

if __name__ == "__main__":
    figure_main("rounds")
