"""Memories read (and written) through `core.attend`: memory networks that read a memory of
sentences hop by hop, the Neural Turing Machine and the DNC that write as well, and the modern
Hopfield layer that retrieves stored patterns."""

from attnlab.memory.dnc import DNC, DNCConfig, DNCState
from attnlab.memory.encoding import position_weights
from attnlab.memory.hopfield import Hopfield, HopfieldConfig, energy, hopfield_update
from attnlab.memory.hops import hop_weights
from attnlab.memory.kvmemnn import KVMemNN, KVMemNNConfig
from attnlab.memory.memn2n import MemN2N, MemN2NConfig
from attnlab.memory.ntm import NTM, NTMConfig, NTMState

__all__ = [
    "DNC",
    "NTM",
    "DNCConfig",
    "DNCState",
    "Hopfield",
    "HopfieldConfig",
    "KVMemNN",
    "KVMemNNConfig",
    "MemN2N",
    "MemN2NConfig",
    "NTMConfig",
    "NTMState",
    "energy",
    "hop_weights",
    "hopfield_update",
    "position_weights",
]
