"""Build hook: a wheel carries copies of the top-level configs/ and checkpoints/ as package data.

The repository keeps them at the top (the design card's layout); ``fds.resources`` finds them there in a
checkout or an editable install, and under ``fds/_resources/`` in a wheel, which this hook fills at build
time. Everything else is in pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
BUNDLED = {"configs": ("**/*.yaml",), "checkpoints": ("*.safetensors", "MODEL_CARD.md")}


class BuildPyWithResources(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # editable installs read the checkout's folders directly
        dest = Path(self.build_lib) / "fds" / "_resources"
        for folder, patterns in BUNDLED.items():
            for pattern in patterns:
                for src in sorted((ROOT / folder).glob(pattern)):
                    target = dest / folder / src.relative_to(ROOT / folder)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, target)


setup(cmdclass={"build_py": BuildPyWithResources})
