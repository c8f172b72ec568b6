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

from ._version import __version__
from .config import ScanConfig
from .errors import ConfigError, InputError, OutputExistsError, PoisonscanError, UsageError

__all__ = ["__version__", "scan", "profile", "ScanResult", "ScanConfig", "PoisonscanError",
           "UsageError", "ConfigError", "InputError", "OutputExistsError"]


def __getattr__(name):
    if name in ("scan", "profile", "ScanResult"):
        from . import api
        return getattr(api, name)
    raise AttributeError(f"module 'poisonscan' has no attribute {name!r}")

