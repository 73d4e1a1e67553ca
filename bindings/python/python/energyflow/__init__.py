"""energyflow: Energy Flow lattice models from Python.

Train, load, infer and embed with numpy over the same library the
``energyflow`` command uses (the compiled ``energyflow._core``): a run
folder written here is the CLI's (``energyflow eval``, ``plot`` and
``train --resume`` read it), and the CLI's runs load here.

Errors: bad input raises ``ValueError``, a missing path
``FileNotFoundError``, a run folder that holds a run (without ``resume``
or ``overwrite``) ``FileExistsError``, an internal error ``RuntimeError``;
each with the CLI's one-line message.
"""

from ._core import (
    Model,
    __version__,
    bundled_data,
    embed,
    evaluate,
    load,
    preset_config,
    presets,
    train,
)

__all__ = [
    "Model",
    "__version__",
    "bundled_data",
    "embed",
    "evaluate",
    "load",
    "preset_config",
    "presets",
    "train",
]
