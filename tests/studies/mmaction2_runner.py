"""Train and test an exported config with mmaction2's own ``Runner``, as its tools/train.py does.

Usage: ``python mmaction2_runner.py CONFIG WORK_DIR``; prints the test metrics as one JSON line.
``python mmaction2_runner.py --logits CONFIG CLIPS.pt OUT.pt``: the exported model's logits.

Run in a process of its own: importing ``mmaction.models`` registers every mmaction2 module,
which would collide with the oracle tests that execute single mmaction2 files in the test
process (tests/mmaction_oracle.py).

The only stand-in: mmaction2 1.2.0's wheel lacks ``models/localizers/drn`` (its issue #2714), so
``import mmaction.models`` fails on that one import; a placeholder module takes its place.
Nothing else of mmaction2 is touched, and the config file is read as exported.
"""

from __future__ import annotations

import json
import sys
import types


def _stand_in_for_missing_drn() -> None:
    package = types.ModuleType("mmaction.models.localizers.drn")
    package.__path__ = []  # a package, so that ``from .drn.drn import DRN`` resolves below it
    module = types.ModuleType("mmaction.models.localizers.drn.drn")

    class DRN:  # noqa: D401 - a placeholder, never registered or built
        """Placeholder for the localizer missing from mmaction2 1.2.0's wheel."""

        def __init__(self, *args: object, **kwargs: object) -> None:
            raise ImportError("mmaction2 1.2.0's wheel lacks models/localizers/drn (#2714)")

    module.DRN = DRN  # type: ignore[attr-defined]
    sys.modules[package.__name__] = package
    sys.modules[module.__name__] = module


def main(config_path: str, work_dir: str) -> None:
    _stand_in_for_missing_drn()
    from mmaction.utils import register_all_modules
    from mmengine.config import Config
    from mmengine.runner import Runner

    register_all_modules()
    cfg = Config.fromfile(config_path)
    cfg.work_dir = work_dir  # what tools/train.py's --work-dir sets; the file is not edited
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.test()
    print(json.dumps({k: float(v) for k, v in metrics.items()}))


def logits(config_path: str, clips_path: str, out_path: str) -> None:
    """mmaction2's ``Recognizer3D`` built from the exported config by its registry, the weights
    of ``load_from`` loaded strictly, and its logits on the saved clips written to a file."""
    _stand_in_for_missing_drn()
    import torch
    from mmaction.registry import MODELS
    from mmaction.utils import register_all_modules
    from mmengine.config import Config
    from mmengine.runner import load_checkpoint

    register_all_modules()
    cfg = Config.fromfile(config_path)
    model = MODELS.build(cfg.model).eval()
    load_checkpoint(model, cfg.load_from, map_location="cpu", strict=True)
    clips = torch.load(clips_path)
    with torch.inference_mode():
        # (N, C, T, H, W) -> mmaction2's (N, views, C, T, H, W); the head's class scores
        scores = model._forward(clips[:, None], stage="head")
    torch.save(scores, out_path)
    print(type(model).__name__)


if __name__ == "__main__":
    if sys.argv[1] == "--logits":
        logits(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        main(sys.argv[1], sys.argv[2])
