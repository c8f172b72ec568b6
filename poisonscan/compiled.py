"""Kernels compiled with numba on first use.

A kernel is a plain Python function written in the subset numba compiles. It is compiled
the first time a scan needs it, not at import: importing numba and loading a kernel cost
about a second and tens of MB of memory, which only scans that use the kernel should pay.
Compiled kernels release the GIL (``nogil``), so threads run them side by side, and are
cached on disk (beside the package, or in the user's cache directory where the package's
is not writable), so only the first scan compiles them.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, MutableMapping


class LazyKernel:
    """A module function compiled on first call, with the helpers it calls.

    Parameters
    ----------
    namespace : dict
        The defining module's ``globals()``. Each helper is replaced there by its
        compiled version before the kernel is compiled, so that the kernel calls
        compiled code (numba resolves a function's globals when it compiles it).
    name : str
        The kernel's name in ``namespace``.
    helpers : tuple of str
        Names in ``namespace`` of the functions the kernel calls (kernels of one module
        may share them: each is compiled once).
    """

    def __init__(self, namespace: MutableMapping[str, Any], name: str,
                 helpers: tuple[str, ...] = ()):
        self._namespace = namespace
        self._name = name
        self._helpers = helpers
        self._compiled: Callable | None = None
        self._lock = threading.Lock()

    def get(self) -> Callable:
        """The compiled kernel (compiled now if this is the first use)."""
        with self._lock:
            if self._compiled is None:
                for helper in self._helpers:  # another kernel may have compiled it
                    if not hasattr(self._namespace[helper], "py_func"):
                        self._namespace[helper] = _jit(self._namespace[helper])
                self._compiled = _jit(self._namespace[self._name])
        return self._compiled


def _jit(fn: Callable) -> Callable:
    import numba

    try:
        return numba.njit(nogil=True, cache=True)(fn)
    except RuntimeError:  # no writable cache directory: compile in memory
        return numba.njit(nogil=True)(fn)
