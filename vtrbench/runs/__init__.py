"""Runs: the run spec, the checks before work, training, grids (``ablate``) and tuning.

Layer 5 of vtrbench (README, "Layout"): imports eval/, extract/, the factory, plugins and the
families below it; never report/, search, browse, api or cli/.
"""
