"""poisonscan: find poisoned rows in training data before you train.

Public API::

    import poisonscan
    result = poisonscan.scan("data/*.parquet", label="y", out="scan-out")
    result.suspects        # ranked suspects (DataFrame)
    result.summary         # summary.json as a dict
    poisonscan.profile("trusted/", label="y", out="profile.json")  # reference for --reference

Heavy libraries (pandas, pyarrow, scikit-learn, PyOD) load on first use, so that
``import poisonscan`` and ``poisonscan --help`` stay fast.
"""

import sys
import types

from ._version import __version__
from .config import ScanConfig
from .errors import ConfigError, InputError, OutputExistsError, PoisonscanError, UsageError

__all__ = ["__version__", "scan", "profile", "ScanResult", "ScanConfig", "PoisonscanError",
           "UsageError", "ConfigError", "InputError", "OutputExistsError"]


def __getattr__(name):
    if name in ("scan", "ScanResult"):
        from . import api
        return getattr(api, name)
    raise AttributeError(f"module 'poisonscan' has no attribute {name!r}")


def profile(source, label=None, out=None, **options):
    """Profile trusted data into a reference (see :func:`poisonscan.api.profile`)."""
    from .api import profile as _profile
    return _profile(source, label, out, **options)


class _Package(types.ModuleType):
    """Keeps ``poisonscan.profile`` the public function.

    Importing the pass-1 submodule ``poisonscan/profile.py`` would bind the package
    attribute ``profile`` to that module; the module stays importable by its full name
    (``from poisonscan.profile import Profile``).
    """

    def __setattr__(self, name, value):
        if name == "profile" and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
