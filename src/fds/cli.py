"""Console scripts ``fds-train``, ``fds-infer``, ``fds-eval``: the same Hydra apps as the top-level scripts.

The config tree is the checkout's ``configs/`` (editable installs); set ``FDS_CONFIG_DIR`` to use another.
"""

from __future__ import annotations

import os
from pathlib import Path

import hydra
from omegaconf import DictConfig

CONFIG_DIR = os.environ.get("FDS_CONFIG_DIR", str(Path(__file__).resolve().parents[2] / "configs"))


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def train_main(cfg: DictConfig) -> None:
    from fds.training import train

    train(cfg)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="infer")
def infer_main(cfg: DictConfig) -> None:
    from fds.pipeline import infer

    raise SystemExit(infer(cfg))


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval")
def eval_main(cfg: DictConfig) -> None:
    from fds.evaluation import evaluate

    evaluate(cfg)
