"""Photo(s) → proxy, detail maps and meshes: ``python infer.py input=PATH output=DIR [ckpt=...]``."""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="configs", config_name="infer")
def main(cfg: DictConfig) -> None:
    from fds.pipeline import infer

    raise SystemExit(infer(cfg))


if __name__ == "__main__":
    main()
