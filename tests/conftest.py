"""One intra-op thread for the whole suite: tiny models on 2 shared cores run many times faster."""

import torch

torch.set_num_threads(1)
