"""Sweep behind the GMM figure 'linear_phase' (declared in gmmcollapse.experiments.gmm.linear_phase).

Usage: python sims/gmm_linear_phase.py [--scale smoke|quick|paper] [--results results/gmm]
"""

from gmmcollapse.experiments.gmm import sim_main

if __name__ == "__main__":
    sim_main("linear_phase")
