from __future__ import annotations

import os

import torch

# One thread a test process: the suite runs on two shared cores.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")

from hypothesis import settings  # noqa: E402

# Reproducible property tests: the same examples on every run and every machine.
settings.register_profile("repo", derandomize=True, deadline=None)
settings.load_profile("repo")
