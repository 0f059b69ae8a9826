"""Draw the GMM figure 'transition' from its results (gmmcollapse.plots.gmm.transition; never computes).

Usage: python figures/gmm_transition.py [--results results/gmm] [--out figures/out]
"""

from gmmcollapse.plots.gmm import figure_main

if __name__ == "__main__":
    figure_main("transition")
