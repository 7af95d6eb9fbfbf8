"""Evaluate a checkpoint and baselines: ``python eval/run.py ckpt=... data=...`` (see configs/eval.yaml)."""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="../configs", config_name="eval")
def main(cfg: DictConfig) -> None:
    from fds.evaluation import evaluate

    evaluate(cfg)


if __name__ == "__main__":
    main()
