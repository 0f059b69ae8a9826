"""Sweep behind the GMM figure 'phase' (declared in gmmcollapse.experiments.gmm.phase).

Usage: python sims/gmm_phase.py [--scale smoke|quick|paper] [--results results/gmm]
"""

from gmmcollapse.experiments.gmm import sim_main

if __name__ == "__main__":
    sim_main("phase")
