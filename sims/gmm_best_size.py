"""Sweeps behind the GMM figure 'best_size' (declared in gmmcollapse.experiments.gmm.best_size).

Usage: python sims/gmm_best_size.py [--scale smoke|quick|paper] [--results results/gmm]
"""

from gmmcollapse.experiments.gmm import sim_main

if __name__ == "__main__":
    sim_main("best_size")
