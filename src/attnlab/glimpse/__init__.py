"""Hard visual attention: a retina that takes foveated glimpses, and the recurrent attention models.

Retina     rho(x, l): k patches around a location, each twice as wide, resized to g x g
PatchConv  two small convolutions reading a glimpse's scales as channels
RAM        glimpse network + core RNN + Gaussian location policy (Mnih et al. 2014)
DRAM       two LSTM layers, a context network, one label per few glimpses (Ba et al. 2015)
reinforce  the location policies' REINFORCE with a learned baseline, and RAM's reward
guide      a guided start: the first steps' glimpses at the objects, the policy imitating them
scoring    test error at the policy's means, from one sampled path, and averaged over several
"""

from attnlab.glimpse.dram import (
    DRAM,
    DRAMConfig,
    DRAMOutput,
    ascending,
    best_order,
    rewards_to_go,
    sequential_rewards,
)
from attnlab.glimpse.ram import RAM, RAMConfig, RAMOutput
from attnlab.glimpse.reinforce import (
    baseline_loss,
    correct_reward,
    episode_reward,
    gaussian_log_prob,
    likelihood_reward,
    policy_gradient_loss,
)
from attnlab.glimpse.retina import PatchConv, Retina, box_centres, pixel_centres
from attnlab.glimpse.scoring import SampledErrors, sampled_errors

__all__ = [
    "DRAM",
    "RAM",
    "DRAMConfig",
    "DRAMOutput",
    "PatchConv",
    "RAMConfig",
    "RAMOutput",
    "Retina",
    "SampledErrors",
    "ascending",
    "baseline_loss",
    "best_order",
    "box_centres",
    "correct_reward",
    "episode_reward",
    "gaussian_log_prob",
    "likelihood_reward",
    "pixel_centres",
    "policy_gradient_loss",
    "rewards_to_go",
    "sampled_errors",
    "sequential_rewards",
]
