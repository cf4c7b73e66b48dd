"""What ran where: device, library versions, git commit. Written into every manifest."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

from ssmbench.device import device_memory_bytes, resolve_device


def _version(pkg: str) -> str | None:
    try:
        return importlib.metadata.version(pkg)
    except importlib.metadata.PackageNotFoundError:
        return None


def git_commit(cwd: Path | None = None) -> dict[str, Any]:
    """HEAD commit of the ssmbench checkout and whether the tree has uncommitted changes.

    A copy of the tree without .git (a remote GPU machine, say) names its commit through the
    environment variable SSMBENCH_GIT_COMMIT.
    """
    if os.environ.get("SSMBENCH_GIT_COMMIT"):
        return {"commit": os.environ["SSMBENCH_GIT_COMMIT"], "dirty": False, "commit_source": "env"}
    cwd = cwd or Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd, capture_output=True, text=True, timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": sha or None, "dirty": bool(dirty) if sha else None}


def _driver_version() -> str | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout else None


def collect_environment(device: torch.device | str | None = None) -> dict[str, Any]:
    """Versions and device facts for a manifest (cheap: no measurements)."""
    dev = torch.device(device) if device is not None else resolve_device("auto")
    env: dict[str, Any] = {
        "ssmbench": _version("ssmbench"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "triton": _version("triton"),
        "numpy": _version("numpy"),
        "mamba_ssm": _version("mamba-ssm") or _version("mamba_ssm"),
        "cuda_runtime": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "device": str(dev),
        "cpu_threads": torch.get_num_threads(),
        **git_commit(),
    }
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        env.update(
            device_name=props.name,
            device_capability=f"{props.major}.{props.minor}",
            device_memory_bytes=device_memory_bytes(dev),
            device_sm_count=props.multi_processor_count,
            driver=_driver_version(),
        )
    else:
        env.update(device_name=f"cpu ({platform.machine()})")
    return env


def device_kind(env: dict[str, Any]) -> str:
    """A short key for 'same kind of device' checks: the GPU name, or 'cpu-<arch>'."""
    name = str(env.get("device_name", ""))
    return name if not name.startswith("cpu") else f"cpu-{platform.machine()}"
