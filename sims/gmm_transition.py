"""Sweep behind the GMM figure 'transition' (declared in gmmcollapse.experiments.gmm.transition).

Usage: python sims/gmm_transition.py [--scale smoke|quick|paper] [--results results/gmm]
"""

from gmmcollapse.experiments.gmm import sim_main

if __name__ == "__main__":
    sim_main("transition")
