"""Train DFDN: ``python train.py experiment=dfdn_geo_app`` (see configs/train.yaml)."""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> None:
    from fds.training import train

    train(cfg)


if __name__ == "__main__":
    main()
