"""Sweep behind the GMM figure 'datasize' (declared in gmmcollapse.experiments.gmm.datasize).

Usage: python sims/gmm_datasize.py [--scale smoke|quick|paper] [--results results/gmm]
"""

from gmmcollapse.experiments.gmm import sim_main

if __name__ == "__main__":
    sim_main("datasize")
