"""The Dockerfile, read and replayed without a Docker engine.

`Dockerfile.parse()` reads the instructions of each stage. `replay_build_stage()` runs the first
stage's COPY and RUN instructions on this machine, under a temporary root standing for the
image's filesystem, with this machine's Python 3.11 standing for the base image's: the result
is the virtualenv the image would hold, with the console scripts its containers run.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: pip may take a while on a busy machine (it builds the project's wheel, resolves, installs).
INSTALL_TIMEOUT_S = 600


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse(path: Path = ROOT / "Dockerfile") -> list[Stage]:
    """The stages of a Dockerfile: each FROM starts one; continuation lines are joined."""
    text = re.sub(r"\\\n", " ", path.read_text())
    stages: list[Stage] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), " ".join(args.split())
        if keyword == "FROM":
            words = args.split()
            stages.append(Stage(words[0], words[2] if len(words) > 2 and words[1].upper() == "AS" else None))
        else:
            stages[-1].instructions.append((keyword, args))
    return stages


def env_pairs(args: str) -> dict[str, str]:
    """ENV a=b c=d (the key=value form)."""
    return dict(word.split("=", 1) for word in shlex.split(args))


class Replay:
    """Replays a build stage under `root`: container path /x is root/x."""

    def __init__(self, root: Path):
        self.root = root
        self.workdir = "/"
        self.env = {"PATH": f"{root / 'usr/local/bin'}:/usr/bin:/bin", "HOME": str(root / "root")}
        bindir = root / "usr/local/bin"
        bindir.mkdir(parents=True)
        (bindir / "python").symlink_to(sys._base_executable)  # the base image's `python`
        (root / "tmp").mkdir()
        (root / "root").mkdir()

    def host(self, container_path: str) -> Path:
        path = container_path if container_path.startswith("/") else f"{self.workdir}/{container_path}"
        return self.root / path.lstrip("/")

    def rewrite(self, command: str) -> str:
        """Container paths in a RUN command, as paths under the root."""
        return re.sub(r"(?<![\w./-])/(opt|tmp|src|var|usr/local)\b", lambda m: str(self.root) + m.group(0), command)

    def run(self, stage: Stage) -> None:
        for keyword, args in stage.instructions:
            getattr(self, f"do_{keyword.lower()}", self.do_other)(args)

    def do_env(self, args: str) -> None:
        for name, value in env_pairs(args).items():
            if name != "PIP_NO_CACHE_DIR":  # replaying, pip may reuse this machine's download cache
                self.env[name] = value

    def do_workdir(self, args: str) -> None:
        self.workdir = args
        self.host(args).mkdir(parents=True, exist_ok=True)

    def do_copy(self, args: str) -> None:
        *sources, dest = shlex.split(args)
        target = self.host(dest)
        for source in sources:
            origin = ROOT / source
            into = target / origin.name if dest.endswith("/") and origin.is_file() else target
            if origin.is_dir():
                shutil.copytree(origin, into, symlinks=True, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                into.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, into)

    def do_run(self, args: str) -> None:
        done = subprocess.run(["sh", "-c", self.rewrite(args)], cwd=self.host(self.workdir), env=self.env,
                              capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
        assert done.returncode == 0, f"RUN {args}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"

    def do_other(self, args: str) -> None:
        pass


def replay_build_stage(root: Path) -> Replay:
    replay = Replay(root)
    replay.run(parse()[0])
    return replay


def clean_env(**extra: str) -> dict[str, str]:
    """An environment with none of this machine's tracker settings."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL")}
    return {**keep, **extra}
