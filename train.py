"""Train DFDN: ``python train.py experiment=dfdn_geo_app`` (see configs/train.yaml)."""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from fds.training import train

    return train(cfg)  # the monitored validation metric: what a Hydra sweeper minimises


if __name__ == "__main__":
    main()
