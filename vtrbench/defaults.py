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
# --compile: torch.compile of the training step (forward + loss; backward through AOTAutograd).
# "none" trains eagerly, as before the option existed (and keeps every earlier run id); the others
# are torch.compile's modes ("reduce-overhead" adds CUDA-graph capture on CUDA; on CPU it is inductor).
COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune")
COMPILE = "none"

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
SINKHORN_ITERS = 5  # iterations, or the cap on them when sinkhorn_tol > 0
SINKHORN_EPS = 0.05  # K = exp(s / eps) on cosine scores: 1 / eps = 20, as IS_BETA
# Stop once an iteration moves no log-scaling (log u, log v) by more than this; 0: run every iteration
# (as before the option existed, so a run's numbers and id stay those of earlier releases).
SINKHORN_TOL = 0.0
# The most iterations sinkhorn_iters may ask for: each is two passes over the test score matrix (a
# disk-backed one is read twice per iteration).
SINKHORN_ITERS_MAX = 1000
# The factor a post-processing multiplies the raw scores by (is_beta; 1 / sinkhorn_eps) is at most this.
# Its normalisers are rounded to float32 and Sinkhorn's exponent holds s / eps plus a scaling of the
# same size, so finite results need 2 x factor x max|s| (+ log of the matrix size) below float32's
# largest value, 3.4e38: with the factor <= 1e6 every score matrix with max|s| <= 1e31 stays finite
# (a cosine is <= 1); a larger max|s| is refused at evaluation naming the option (eval/ranking.py).
POST_SCALE_MAX = 1e6

# EMCL as an inference module (``--post emcl``; Jin et al., NeurIPS 2022): the official MSR-VTT
# setting of jpthu17/EMCL video_retrieval/As_an_inference_module/README.md (CLIP2Video + EMCL: --K 7
# --stage_num 10 --lamd 0.1 --beta 4); the seed draws the bases' starting values (the official code
# draws them from torch's global generator).
EMCL_POST_K = 7  # subspace size: number of bases
EMCL_POST_ITERS = 10  # EM iterations (stage_num)
EMCL_POST_LAMBDA = 0.1  # softmax temperature of the E-step (lamd)
EMCL_POST_BETA = 4.0  # weight of the reconstruction added to the features (beta)
EMCL_POST_SEED = 0
# The largest values emcl_k / emcl_iters may ask for: each iteration is two (N x E) x K products over
# the whole test split, and K bases cost N x K memory.
EMCL_K_MAX = 1024
EMCL_ITERS_MAX = 1000
# The smallest lambda: the E-step's logits are (features . bases) / lambda; with unit features and
# bases a floor of 1e-4 keeps them within +-1e4 * sqrt(N), finite in float32.
EMCL_LAMBDA_MIN = 1e-4
EMCL_BETA_MAX = 1e4

POST_DEFAULTS = MappingProxyType(
    {
        "is_beta": IS_BETA,
        "csls_k": CSLS_K,
        "sinkhorn_iters": SINKHORN_ITERS,
        "sinkhorn_eps": SINKHORN_EPS,
        "sinkhorn_tol": SINKHORN_TOL,
        "emcl_k": EMCL_POST_K,
        "emcl_iters": EMCL_POST_ITERS,
        "emcl_lambda": EMCL_POST_LAMBDA,
        "emcl_beta": EMCL_POST_BETA,
        "emcl_seed": EMCL_POST_SEED,
    }
)

# EMCL as a training module (head option ``emcl=true`` of the factorised heads): EMCL-Net's MSR-VTT
# setting, the argparse defaults of jpthu17/EMCL video_retrieval/EMCL-Net/main_retrieval.py, which its
# README's MSR-VTT command keeps (--centerK 32 --stage_num 9 --momentum 0.9 --lamd 1 --beta 3).
EMCL_TRAIN_K = 32
EMCL_TRAIN_ITERS = 9
EMCL_TRAIN_LAMBDA = 1.0
EMCL_TRAIN_BETA = 3.0
EMCL_TRAIN_MOMENTUM = 0.9

# ------------------------------------------------------------ reports
SIGNIFICANCE = 0.05  # the family-wise level of the report's tests (the † marks, the decomposition)
# The loss x inference decomposition's target cell, fixed before looking at the numbers: the
# DSL-trained, DSL-inferred cell (CAMoE's setting); a loss "dsl" also matches its variants "dsl[...]".
DECOMPOSITION_TARGET = ("dsl", "dsl")

# ------------------------------------------------------------ what a run does around the numbers
OVERWRITE = "never"
RESULTS_DIR = "results"
LOGIT_SCALE_INIT = 100.0  # CLIP's exp(log 100) for every head with a learned logit scale

# ------------------------------------------------------------ reports (vtrbench report)
REPORT_NOTES_STYLES = ("full", "short", "none")
REPORT_NOTES = "full"  # --notes: every note under the table, as before issue 30
# --split: LaTeX tables taller than a page become several floats ("auto"), never ("none"), or one
# float per post-processing block ("blocks")
REPORT_SPLITS = ("auto", "none", "blocks")
REPORT_SPLIT = "auto"
# --tensorboard DIR: per-epoch TensorBoard scalars of each run (None: none; needs the tensorboard extra)
TENSORBOARD = None

# ------------------------------------------------------------ pretrained weights (extract, search)
# Seconds one TCP connection to the weights' host (or proxy) may take before the network counts as
# unreachable and `--pretrained TAG` fails at once instead of in the hub's retry loop (~1 min).
HUB_PROBE_TIMEOUT = 3.0

# ------------------------------------------------------------ vtrbench tune
# TPE's random start-up trials per cell when --startup-trials is not given: a quarter of --trials,
# at least 1 and at most Optuna's own default of 10 (runs/tune/plan.py, startup_trials). 20 trials
# keep the 5 of earlier releases; 4 trials get 1 random trial and 3 modelled ones instead of 4 random.
TUNE_STARTUP_SHARE = 4  # --trials // TUNE_STARTUP_SHARE
TUNE_STARTUP_MAX = 10
# tune --plot draws a cell's parameter importances only from at least this many complete trials
# (Optuna's fANOVA fits a random forest to them; from fewer its ranking is noise).
TUNE_MIN_IMPORTANCE_TRIALS = 10
# Seconds between a tuning worker's heartbeats on an RDB study storage (grace period: 3 of them)
TUNE_HEARTBEAT = 10
# What a trial's cost grows along (--fidelity): "epochs" (the pruner sees every epoch), "data,epochs"
# (explicit rungs of train-video fraction x epochs, successive halving), "none" (full fidelity, no
# pruner). The pruner when --pruner is not given (--fidelity epochs only; runs/tune/plan.py).
TUNE_FIDELITY = "epochs"
TUNE_PRUNER = "median"
# --fidelity data,epochs: successive halving keeps the top 1/TUNE_ETA of a rung's trials (at least the
# best so far); without --rungs the rungs are (1/eta^2, max/eta^2), (1/eta, max/eta), (1, max) as
# Hyperband's first bracket would place them (runs/tune/fidelity.py, default_rungs).
TUNE_ETA = 3
TUNE_RUNG_COUNT = 3
# tune's validation hold-out without --val-split or --folds: this fraction of the train videos
TUNE_VAL_FRACTION = 0.1
# tune --folds K: validate on K video-disjoint folds of the train split (None: one --val-fraction
# hold-out, as earlier releases did); each trial's objective is the mean over its K fold models.
TUNE_FOLDS = None
# tune --objective: "rsum" (validation RSum, R@1+5+10 both ways) or "r1" (t2v R@1 + v2t R@1, the
# objective of earlier releases). RSum: on the demo cache its fold-to-fold spread relative to the
# spread between configurations was smaller (benchmarks/tune_objective.py; README "Cross-validated tuning").
TUNE_OBJECTIVE = "rsum"
# The smallest validation part (the hold-out, --val-split or each fold) tune accepts, in usable videos:
# with one video every retrieval metric is 100 for any model, so every trial ties at the ceiling.
TUNE_MIN_VAL_VIDEOS = 2
# At or below this many validation videos tune warns: R@10 is 100 for any model (R@5 from 5 down)
# and R@1 moves in steps of 100 / captions, so the objective hardly tells configurations apart.
TUNE_FEW_VAL_VIDEOS = 10

# ------------------------------------------------------------ vtrbench search
SEARCH_CAPTIONS = 3  # cached captions printed under each retrieved video (--captions; --json: all)

# Progress when the output is not a terminal (a Slurm log, a pipe): one plain line per running task at
# most this often, in seconds (plus a task's first and last line); VTRBENCH_PROGRESS_EVERY overrides it.
PROGRESS_EVERY = 10.0
