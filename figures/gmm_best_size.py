"""Draw the GMM figure 'best_size' from its results (gmmcollapse.plots.gmm.best_size; never
computes).

Usage: python figures/gmm_best_size.py [--results results/gmm] [--out figures/out]
"""

from gmmcollapse.plots.gmm import figure_main

if __name__ == "__main__":
    figure_main("best_size")
