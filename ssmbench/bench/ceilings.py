"""The device's measured limits: copy bandwidth and matmul rate, taken in the same run."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from ssmbench.bench.timing import benchmark


@dataclass(frozen=True)
class Ceilings:
    """Measured device limits.

    copy_gbps: device-to-device copy, (bytes read + bytes written) / median time, GB/s.
    matmul_tflops: dense square matmul of size ``matmul_n`` in ``matmul_dtype``, TFLOP/s.
    """

    device: str
    copy_gbps: float
    copy_bytes: int
    matmul_tflops: float
    matmul_n: int
    matmul_dtype: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def measure_ceilings(device: torch.device | str, *, quick: bool = False) -> Ceilings:
    """Measure copy bandwidth and matmul rate on ``device`` (random data, never zeros)."""
    device = torch.device(device)
    cuda = device.type == "cuda"
    if cuda:
        n_copy = (1 << 28) if not quick else (1 << 26)  # 1 GiB / 256 MiB of fp32
        mm_n, mm_dtype = (8192 if not quick else 4096), torch.bfloat16
    else:
        n_copy = 1 << 24 if not quick else 1 << 22  # 64 MiB / 16 MiB
        mm_n, mm_dtype = (1024 if not quick else 512), torch.float32
    src = torch.rand(n_copy, device=device)
    dst = torch.empty_like(src)
    t_copy = benchmark(lambda: dst.copy_(src), device=device, rep_ms=200, flush_l2=False)
    copy_bytes = 2 * src.numel() * src.element_size()
    copy_gbps = copy_bytes / (t_copy.median * 1e-3) / 1e9
    a = torch.randn(mm_n, mm_n, device=device, dtype=mm_dtype)
    b = torch.randn(mm_n, mm_n, device=device, dtype=mm_dtype)
    t_mm = benchmark(lambda: a @ b, device=device, rep_ms=200, flush_l2=False)
    tflops = 2 * mm_n**3 / (t_mm.median * 1e-3) / 1e12
    return Ceilings(
        device=device_name(device),
        copy_gbps=copy_gbps,
        copy_bytes=copy_bytes,
        matmul_tflops=tflops,
        matmul_n=mm_n,
        matmul_dtype=str(mm_dtype).removeprefix("torch."),
    )


def device_name(device: torch.device | str) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
