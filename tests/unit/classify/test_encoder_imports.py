"""A CPU worker does not import torch, transformers or litellm to pick the encoder's device.

Importing torch only to ask ``torch.cuda.is_available()`` cost each gateway worker ~100 MiB of
memory and seconds of start-up (``docs/performance.md``, issue #21). The check runs in a fresh
interpreter, so that no other test's imports leak into ``sys.modules``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from router.classify.encoder import gpu_driver_present

ROOT = Path(__file__).resolve().parents[3]

PROBE = """
import sys
import router.app
import router.cli.main
import router.classify.factory
from router.classify.encoder import resolve_device
assert resolve_device("auto") == "cpu"
print(",".join(m for m in ("torch", "transformers", "litellm") if m in sys.modules))
"""


def test_gpu_driver_present_looks_for_any_of_its_paths(tmp_path: Path) -> None:
    missing = str(tmp_path / "nvidia0")
    assert not gpu_driver_present((missing,))
    present = tmp_path / "kfd"
    present.write_text("")
    assert gpu_driver_present((missing, str(present)))


def test_picking_the_device_on_a_cpu_machine_imports_no_heavy_library() -> None:
    if gpu_driver_present():
        pytest.skip("a GPU driver is present: torch is imported to ask it")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("ROUTER_DEVICE", None)
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""
