"""Evaluate a checkpoint and baselines on held-out scans and real photos (see configs/eval.yaml):

    python eval/run.py [ckpt=FILE.safetensors] [photos.enabled=false] [readme=README.md]

``readme=README.md`` also rewrites the README's results block from this run's table.
"""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="../configs", config_name="eval")
def main(cfg: DictConfig) -> None:
    from fds.evaluation import evaluate

    evaluate(cfg)


if __name__ == "__main__":
    main()
