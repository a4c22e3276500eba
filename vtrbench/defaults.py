"""Every default of a run, declared once.

The command line (``cli/``), grid files (``vtrbench ablate --grid``), ``RunSpec``, ``TrainConfig``,
the evaluation options (``eval.EvalOptions``) and the Python API (``vtrbench.api``) all read their
defaults from here, so that a default cannot change in one place and not in another
(tests/ground/test_defaults.py compares each of them with this module).

Ground layer: imports nothing from vtrbench.
"""

from __future__ import annotations

from types import MappingProxyType

# ------------------------------------------------------------ the training recipe (METHODS.md §10)
# CLIP4Clip's recipe adapted to frozen features.
EPOCHS = 5
BATCH_SIZE = 128
LR = 1e-4
WEIGHT_DECAY = 0.2
BETAS = (0.9, 0.98)
EPS = 1e-6
WARMUP = 0.1  # fraction of steps with linear warm-up, then cosine decay
GRAD_CLIP = 1.0
VAL_FRACTION = 0.0

# ------------------------------------------------------------ evaluation protocol and inference
V2T_PROTOCOL = "clip4clip"  # "clip4clip" or "any-caption" (metrics.py's module note)
MDR = "standard"  # "standard" (np.median) or "clip4clip" (torch.median for multi-caption t2v)
DSL_TAU = 1.0  # inference DSL temperature on logit-scaled scores
QB_BANK = 5000  # QB-Norm: training captions in the query bank
QB_BETA = 20.0  # QB-Norm: inverse temperature
QB_K = 1  # QB-Norm: a bank query's top-k gallery items are hubs (official default 1)
# The post-processings computed when none are named; qbnorm only where there are banks.
POSTPROCESSING = ("raw", "dsl", "qbnorm")
# Query rows scored and ranked at once; peak memory is a few float64 chunk x gallery blocks.
CHUNK_SIZE = 1024
# Items embedded by a head at once (captions or videos) before scoring.
EMBED_BATCH = 1024

# ------------------------------------------------------------ post-processing parameters
# (--post-option KEY=VALUE; defaults are left out of a run's identity)
IS_BETA = 20.0  # inverted softmax: inverse temperature on cosine scores, as QB-Norm's default beta
CSLS_K = 10  # Conneau et al.'s k
SINKHORN_ITERS = 5
SINKHORN_EPS = 0.05  # K = exp(s / eps) on cosine scores: 1 / eps = 20, as IS_BETA

POST_DEFAULTS = MappingProxyType(
    {
        "is_beta": IS_BETA,
        "csls_k": CSLS_K,
        "sinkhorn_iters": SINKHORN_ITERS,
        "sinkhorn_eps": SINKHORN_EPS,
    }
)

# ------------------------------------------------------------ what a run does around the numbers
OVERWRITE = "never"
RESULTS_DIR = "results"
LOGIT_SCALE_INIT = 100.0  # CLIP's exp(log 100) for every head with a learned logit scale
# Progress when the output is not a terminal (a Slurm log, a pipe): one plain line per running task at
# most this often, in seconds (plus a task's first and last line); VTRBENCH_PROGRESS_EVERY overrides it.
PROGRESS_EVERY = 10.0
