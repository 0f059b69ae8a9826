"""Draw the GMM figure 'datasize' from its results (gmmcollapse.plots.gmm.datasize; never computes).

Usage: python figures/gmm_datasize.py [--results results/gmm] [--out figures/out]
"""

from gmmcollapse.plots.gmm import figure_main

if __name__ == "__main__":
    figure_main("datasize")
