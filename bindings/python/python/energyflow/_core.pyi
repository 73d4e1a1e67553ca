"""Type stubs of energyflow._core (the compiled module; see __init__.py)."""

import os
from typing import Any, Callable, Literal, Optional, Union, overload

import numpy as np
import numpy.typing as npt

__version__: str

PathLike = Union[str, os.PathLike[str]]
Floats = npt.NDArray[Union[np.float16, np.float32, np.float64]]
Pairs = tuple[Floats, Floats]

def presets() -> list[str]:
    """The presets' names."""

def preset_config(name: str) -> dict[str, dict[str, Any]]:
    """Preset `name`'s config, nested ({"model", "flow", "train"}), every field (unset optional ones None)."""

def bundled_data() -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], list[tuple[str, str]]]:
    """The bundled WordNet pairs: inputs, targets (float32 [4000, 384]) and the (input, target) texts."""

def train(
    out: PathLike,
    *,
    preset: Optional[str] = None,
    config: Union[dict[str, Any], PathLike, None] = None,
    data: Union[PathLike, Pairs, None] = None,
    epochs: Optional[int] = None,
    max_steps: Optional[int] = None,
    seed: Optional[int] = None,
    resume: bool = False,
    overwrite: bool = False,
    device: Literal["cpu", "vulkan"] = "cpu",
    callback: Optional[Callable[[dict[str, Any]], object]] = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Trains into run folder `out` as `energyflow train` does; returns the eval line of `out/best`.

    preset: the preset under `config` ("tuned" for a new run when None; a resumed run keeps its own).
    callback(record) gets every record of metrics.jsonl; if it raises (or on Ctrl-C) the run stops
    after the current step, `out/latest` is written, and the exception propagates.
    """

class Model:
    """A checkpoint's model; `infer` may run on several threads at once."""

    @property
    def config(self) -> dict[str, dict[str, Any]]: ...
    @property
    def input_dim(self) -> int: ...
    @property
    def output_dim(self) -> int: ...
    @property
    def step(self) -> Optional[int]: ...
    @overload
    def infer(
        self, x: Floats, *, batch_size: Optional[int] = None, return_stats: Literal[False] = False
    ) -> npt.NDArray[np.float32]: ...
    @overload
    def infer(
        self, x: Floats, *, batch_size: Optional[int] = None, return_stats: Literal[True]
    ) -> tuple[npt.NDArray[np.float32], dict[str, Any]]: ...
    def evaluate(self, inputs: Floats, targets: Floats) -> dict[str, Any]:
        """n, loss, mse, cosine, identity_cosine, linear_cosine (ridge fitted on these rows) on all given rows."""

def load(path: PathLike, *, device: Literal["cpu", "vulkan"] = "cpu") -> Model:
    """The model of a run folder (its best/) or a checkpoint folder."""

def evaluate(path: PathLike, *, data: Union[PathLike, Pairs, None] = None) -> dict[str, Any]:
    """What `energyflow eval --checkpoint PATH --json` prints."""

def embed(
    texts: list[str], model: PathLike, *, batch_size: int = 32, max_length: Optional[int] = None
) -> npt.NDArray[np.float32]:
    """Teacher embeddings (float32 [N, D]) from a sentence-transformers folder, as `energyflow embed`."""
