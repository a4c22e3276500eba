"""``vtrbench tune``: equal-budget hyperparameter search of heads x losses on validation data.

Optuna is an optional extra (``pip install 'vtrbench[tune]'``); nothing here imports it until a
study is opened. The modules, each importing only those listed before it:

- :mod:`~vtrbench.runs.tune.notes`: report notes for tuned results (pure: no torch, no Optuna)
- :mod:`~vtrbench.runs.tune.space`: search spaces (declared by heads and losses, ``--space`` files)
- :mod:`~vtrbench.runs.tune.storage`: Optuna, storage URLs, study names
- :mod:`~vtrbench.runs.tune.plan`: :class:`TuneSpec` and every check before training
- :mod:`~vtrbench.runs.tune.status`: trial counts, dead workers, studies read back (``--status``)
- :mod:`~vtrbench.runs.tune.trial`: one trial (sample, train, score, prune)
- :mod:`~vtrbench.runs.tune.study`: the run (:func:`run_tune`)
- :mod:`~vtrbench.runs.tune.plots`: ``--plot`` figures
- :mod:`~vtrbench.runs.tune.tuned`: ``ablate --tuned`` (imports :mod:`vtrbench.runs.grid`)

This package re-exports nothing: the report imports ``notes`` and must not load torch by doing so.
"""
