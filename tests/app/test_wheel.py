"""The wheel a user installs runs the CLI, and installs nothing generic at the top level."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", name="wheel")
def _wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    [whl] = out.glob("pumpguard-*.whl")
    return whl


def test_wheel_installs_only_the_pumpguard_package(wheel: Path):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"pumpguard", next(t for t in tops if t.endswith(".dist-info"))}
    for needed in (
        "pumpguard/engine/core.py",
        "pumpguard/rules/blincyto/pack.yaml",
        "pumpguard/data/demo_course.jsonl",
        "pumpguard/adapters/jsonl.py",
        "pumpguard/simulations/course.py",
    ):
        assert needed in names


def test_wheel_runs_the_cli(wheel: Path, tmp_path: Path):
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    probe = subprocess.run(
        [sys.executable, "-c", "import pumpguard.engine; print(pumpguard.engine.__file__)"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.startswith(str(target))
    demo = subprocess.run(
        [sys.executable, "-m", "pumpguard", "demo", "--out-dir", str(tmp_path / "demo")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert demo.returncode == 0, demo.stderr
    assert "5 findings written" in demo.stdout
