"""vtrbench's own fault suite: inject faults on purpose and count how each one ends.

``python -m benchmarks.faults`` runs every case (minutes); ``--quick`` runs the fast set that
``tests/top/test_faults.py`` runs in CI. Area modules hold the cases; ``core`` the vocabulary.
"""
