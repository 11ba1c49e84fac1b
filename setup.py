"""Ships the sample bot inside the installed package.

``examples/support-bot`` stays where people look for it in the source tree;
a built wheel (``pip install .``, not only ``-e``) carries a copy at
``bot/examples/support-bot``, which :data:`bot.config.DEFAULT_BOT` prefers
when it is there.  Everything else is configured in ``pyproject.toml``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SAMPLE_BOTS = Path(__file__).resolve().parent / "examples"


class BuildWithSampleBot(build_py):
    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "bot" / "examples"
        for bot in sorted(p for p in SAMPLE_BOTS.iterdir() if p.is_dir()):
            shutil.copytree(bot, target / bot.name, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"))


setup(cmdclass={"build_py": BuildWithSampleBot})
