"""Memory networks: models that read a memory of sentences through `core.attend`, hop by hop."""

from attnlab.memory.hops import hop_weights
from attnlab.memory.kvmemnn import KVMemNN, KVMemNNConfig
from attnlab.memory.memn2n import MemN2N, MemN2NConfig, position_weights

__all__ = ["KVMemNN", "KVMemNNConfig", "MemN2N", "MemN2NConfig", "hop_weights", "position_weights"]
