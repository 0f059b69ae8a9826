"""Sweep behind the GMM figure 'rounds' (declared in gmmcollapse.experiments.gmm.rounds).

Usage: python sims/gmm_rounds.py [--scale smoke|quick|paper] [--results results/gmm]
"""

from gmmcollapse.experiments.gmm import sim_main

if __name__ == "__main__":
    sim_main("rounds")
