"""The project's policy file: a learned policy as plain numpy arrays in one ``.npz``.

Owns ``LinearPolicy`` (``save``, ``load``) and ``PolicyFileError``. A file holds (docs/ml.md):

===========  =================  ==========================================================
 key          dtype, shape       meaning
===========  =================  ==========================================================
 format       str                ``"multipar-policy"``
 version      int                ``1`` (``FORMAT_VERSION``); a newer file is refused
 kind         str                ``"linear"``
 layout       str, (n,)          the observation's feature names, in order
                                 (``engine.core.ml_interface.FEATURES``)
 mean         float32, (n,)      normalisation: ``x = (obs - mean) / scale``
 scale        float32, (n,)      (every value > 0)
 weights      float32, (n, 3)    logits = ``x @ weights + bias``, one column per action
 bias         float32, (3,)      (0 HOLD, 1 BUY, 2 SELL)
 meta         str                free JSON: how it was trained (optional)
===========  =================  ==========================================================

The action is the first largest logit. Everything is computed in float32 on the observation
rounded to float32, which is exactly what the gymnasium environment (``engine.ml.env``) hands
a learner, so a policy makes the same decision in the environment as in the ``policy``
strategy (which passes float64). Loaded with ``allow_pickle=False``: a file never runs code.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from engine.core.ml_interface import check_layout

FORMAT = "multipar-policy"
FORMAT_VERSION = 1
N_ACTIONS = 3


class PolicyFileError(ValueError):
    """A policy file that cannot be used: one line naming the file, the field and the fix."""


class LinearPolicy:
    """``action = argmax(((obs - mean) / scale) @ weights + bias)``, in float32."""

    def __init__(
        self,
        layout: Any,
        weights: Any,
        bias: Any,
        mean: Any = None,
        scale: Any = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.layout = check_layout(layout)
        n = len(self.layout)
        self.weights = np.asarray(weights, dtype=np.float32).reshape(n, N_ACTIONS)
        self.bias = np.asarray(bias, dtype=np.float32).reshape(N_ACTIONS)
        self.mean = np.zeros(n, np.float32) if mean is None else np.asarray(mean, np.float32).reshape(n)
        self.scale = np.ones(n, np.float32) if scale is None else np.asarray(scale, np.float32).reshape(n)
        self.meta = dict(meta or {})
        for name, a in (("weights", self.weights), ("bias", self.bias), ("mean", self.mean), ("scale", self.scale)):
            if not np.all(np.isfinite(a)):
                raise ValueError(f"{name} holds a value that is not finite")
        if np.any(self.scale <= 0):
            raise ValueError("scale must be > 0 everywhere")

    def logits(self, obs: Any) -> np.ndarray:
        x = (np.asarray(obs, dtype=np.float32) - self.mean) / self.scale
        return x @ self.weights + self.bias  # type: ignore[no-any-return]

    def __call__(self, obs: Any) -> int:
        return int(np.argmax(self.logits(obs)))

    def save(self, path: str | Path) -> Path:
        """Write the file (``.npz`` is added when missing); returns its path."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        with path.open("wb") as fh:
            np.savez(
                fh,
                format=np.array(FORMAT),
                version=np.array(FORMAT_VERSION),
                kind=np.array("linear"),
                layout=np.array(self.layout),
                mean=self.mean,
                scale=self.scale,
                weights=self.weights,
                bias=self.bias,
                meta=np.array(json.dumps(self.meta, sort_keys=True)),
            )
        return path

    @classmethod
    def load(cls, path: str | Path) -> LinearPolicy:
        """Read a file; ``PolicyFileError`` (one line) when it is not a usable policy file."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except FileNotFoundError:
            raise PolicyFileError(f"{path}: no such file (train one: python examples/train_policy.py)") from None
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise PolicyFileError(f"{path}: not a policy file (.npz): {exc}") from None

        def field(name: str) -> np.ndarray:
            if name not in arrays:
                raise PolicyFileError(f"{path}: field '{name}' missing: not a {FORMAT} file; retrain it")
            return arrays[name]

        if str(field("format")) != FORMAT:
            raise PolicyFileError(f"{path}: field 'format' is {str(field('format'))!r}, not {FORMAT!r}")
        try:
            version = int(field("version"))
        except (TypeError, ValueError):
            raise PolicyFileError(f"{path}: field 'version' is not an integer") from None
        if version > FORMAT_VERSION:
            raise PolicyFileError(
                f"{path}: field 'version' is {version}; this program reads up to {FORMAT_VERSION}: upgrade it"
            )
        if str(field("kind")) != "linear":
            raise PolicyFileError(f"{path}: field 'kind' is {str(field('kind'))!r}; only 'linear' is known")
        try:
            layout = check_layout([str(x) for x in np.atleast_1d(field("layout"))])
        except ValueError as exc:
            raise PolicyFileError(f"{path}: field 'layout': {exc}") from None
        n = len(layout)
        shapes = {"mean": (n,), "scale": (n,), "weights": (n, N_ACTIONS), "bias": (N_ACTIONS,)}
        for name, shape in shapes.items():
            a = field(name)
            if a.shape != shape or a.dtype.kind not in "fi":
                raise PolicyFileError(
                    f"{path}: field '{name}' is {a.dtype} {a.shape}, expected numbers {shape} "
                    f"for a layout of {n} features; retrain it"
                )
        meta: dict[str, Any] = {}
        if "meta" in arrays:
            try:
                meta = json.loads(str(arrays["meta"]))
            except ValueError:
                raise PolicyFileError(f"{path}: field 'meta' is not JSON") from None
        try:
            return cls(layout, field("weights"), field("bias"), field("mean"), field("scale"), meta)
        except ValueError as exc:
            raise PolicyFileError(f"{path}: {exc}") from None
