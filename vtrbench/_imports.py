"""Optional dependencies, imported where they are needed with one install hint.

In the spirit of optuna's ``optuna/_imports.py``: a module that needs an optional package (Optuna,
matplotlib, open_clip, PyAV, TextBlob) asks :func:`try_import` for it at the point of use, and a
missing package becomes one :class:`~vtrbench.errors.VtrbenchError` line that says which extra
installs it, instead of an ``ImportError`` traceback. Importing vtrbench itself never needs them.

Ground layer: imports only :mod:`vtrbench.errors`.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from vtrbench.errors import VtrbenchError

# package -> the extra of pyproject.toml that installs it
EXTRAS = {
    "optuna": "tune",
    "matplotlib": "plot",
    "open_clip": "extract",
    "av": "extract",
    "textblob": "extract",
    "torchvision": "extract",
    "PIL": "extract",
}


def install_hint(package: str, what: str | None = None) -> str:
    """``"vtrbench tune needs Optuna: pip install 'vtrbench[tune]'"``-style hint."""
    extra = EXTRAS.get(package.split(".")[0])
    how = f"pip install 'vtrbench[{extra}]'" if extra else f"pip install {package}"
    return f"{what or package} needs {package}: {how}" if what else f"{package} is not installed: {how}"


def try_import(package: str, *, hint: str | None = None) -> ModuleType:
    """``importlib.import_module(package)``, or a one-line VtrbenchError with ``hint`` (default: the
    extra that installs it) when it is not installed."""
    try:
        return importlib.import_module(package)
    except ImportError:
        raise VtrbenchError(hint or install_hint(package)) from None


def available(package: str) -> bool:
    """Whether ``package`` can be imported (it is imported to find out)."""
    try:
        importlib.import_module(package)
    except ImportError:
        return False
    return True
