"""The fused Triton scan (run by the interpreter on CPU) against the sequential reference:
values, final state and every gradient. Output buffers are NaN-poisoned, so an element the
kernels never write fails. Interpreter shapes stay tiny: it runs every op in numpy."""

import pytest
import torch
import triton
from torch.utils._python_dispatch import TorchDispatchMode
from triton.backends.compiler import GPUTarget
from triton.compiler import make_backend
from triton.runtime.jit import JITFunction, compute_cache_key, create_function_from_signature

from ssmbench.device import triton_interpreting
from ssmbench.errors import BadInput
from ssmbench.ops import selective_scan
from ssmbench.ops.scan import triton as ts
from ssmbench.ops.scan.ref import selective_scan_ref
from ssmbench.ops.scan.triton import LaunchShape, TritonScanConfig, default_config, selective_scan_triton
from tests.helpers import assert_close
from tests.ops.scan_cases import NAMES, Case, check_against_ref, make_inputs


@pytest.fixture(autouse=True)
def _poison(monkeypatch):
    monkeypatch.setenv("SSMBENCH_POISON_OUTPUTS", "1")


CASES = [
    Case(2, 6, 70, 4),  # a partial last L block, a partial channel block
    Case(2, 6, 63, 3, groups=3),  # grouped B/C, N not a power of two
    Case(1, 4, 1, 5),  # L = 1
    Case(2, 8, 17, 8, groups=2, z=False, D=False, bias=False, softplus=False),
    Case(1, 4, 21, 32),
    Case(1, 4, 11, 64, groups=2),
    Case(1, 2, 9, 100),  # BLOCK_N 128, N not a power of two
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_triton_matches_ref_fp64(case, device):
    check_against_ref(selective_scan_triton, case, seed=CASES.index(case), tol=1e-10, device=device)


def test_triton_fp32_without_last_state_gradient(device):
    case = Case(2, 5, 33, 4, D=False, bias=False, dtype=torch.float32)
    check_against_ref(selective_scan_triton, case, seed=11, tol=1e-4, use_last=False, device=device)


def test_triton_bf16(device):
    check_against_ref(selective_scan_triton, Case(2, 6, 40, 4, dtype=torch.bfloat16), seed=12, tol=1e-2,
                      device=device)


def test_triton_other_block_shapes(device):
    # one state saved per forward block (STATE_EVERY = 1), wider channel blocks, no prefetch
    fwd = LaunchShape(block_d=8, block_l=4, prefetch=False)
    cfg = TritonScanConfig(fwd, LaunchShape(block_d=2, block_l=4, prefetch=False))
    check_against_ref(selective_scan_triton, Case(1, 10, 21, 4), seed=13, tol=1e-10, device=device,
                      config=cfg)


@pytest.mark.parametrize("copies", [2, 0], ids=["2-copies", "store"])
@pytest.mark.parametrize("groups", [0, 2], ids=["ungrouped", "grouped"])
def test_triton_dbc_copies(copies, groups, device):
    # dB/dC through several buffer copies (2: programs 0 and 2 of a group share one), or one per
    # program with plain stores; 12 channels in blocks of 2: 6 programs (3 per group when grouped)
    shapes = LaunchShape(block_d=2, block_l=4), LaunchShape(block_d=2, block_l=8)
    cfg = TritonScanConfig(*shapes, dbc_copies=copies)
    case = Case(1, 12, 11, 4, groups=groups)
    check_against_ref(selective_scan_triton, case, seed=20 + copies + groups, tol=1e-10, device=device,
                      config=cfg)


@pytest.mark.parametrize("n", sorted(ts.SHAPES), ids=lambda n: f"N{n}")
def test_triton_device_shapes(n, device):
    # the launch shapes default_config picks on a GPU (num_warps has no effect in the interpreter)
    fwd, bwd = ts.SHAPES[n]
    cfg = TritonScanConfig(fwd, bwd, dbc_copies=2)
    # up to N = 32 a partial channel block and two backward blocks; above, where the interpreter
    # is slow, one channel block and one partial backward block
    block_d = max(fwd.block_d, bwd.block_d)
    case = Case(1, block_d + 1, bwd.block_l + 3, n) if n <= 32 else Case(1, block_d, 11, n)
    check_against_ref(selective_scan_triton, case, seed=30 + n, tol=1e-10, device=device, config=cfg)


@pytest.mark.parametrize("case", [
    Case(1, 4, 11, 40, groups=2),  # 3 chunks of 16, the last one partial
    Case(2, 2, 9, 32, z=False, D=False, bias=False, softplus=False),
], ids=str)
def test_triton_states_split_over_programs(case, device):
    # the backward's states in chunks of 16 programs: du, ddelta summed over chunks
    cfg = TritonScanConfig(LaunchShape(block_d=4, block_l=4), LaunchShape(block_d=2, block_l=8, block_n=16))
    check_against_ref(selective_scan_triton, case, seed=40 + case.N, tol=1e-10, device=device, config=cfg)


def test_triton_states_split_bf16(device):
    # the chunk sums are cast to the inputs' dtype after the kernel
    cfg = TritonScanConfig(LaunchShape(block_d=4, block_l=4), LaunchShape(block_d=4, block_l=8, block_n=16))
    check_against_ref(selective_scan_triton, Case(1, 4, 11, 32, dtype=torch.bfloat16), seed=41, tol=1e-2,
                      device=device, config=cfg)


def test_triton_grad_without_last_state(device):
    # return_last_state=False under autograd: the forward stores no final state
    case = Case(2, 6, 37, 4)
    x = make_inputs(case, seed=15, device=device)
    xs = {k: v.clone().requires_grad_() for k, v in x.items()}
    x64 = {k: v.detach().clone().requires_grad_() for k, v in x.items()}
    out = selective_scan_triton(*[xs[k] for k in NAMES], True)
    ref = selective_scan_ref(*[x64[k] for k in NAMES], True)
    assert_close(out, ref, 1e-10, "out")
    dout = torch.randn(out.shape, dtype=out.dtype, generator=torch.Generator().manual_seed(1)).to(device)
    grads = torch.autograd.grad(out, [xs[k] for k in NAMES], dout)
    ref_grads = torch.autograd.grad(ref, [x64[k] for k in NAMES], dout)
    for k, g, r in zip(NAMES, grads, ref_grads, strict=True):
        assert_close(g, r, 1e-10, f"d{k}")


def test_triton_no_grad_path_and_dispatcher(device):
    x = make_inputs(Case(2, 4, 19, 4), seed=14, device=device)
    args = [x[k] for k in NAMES]
    with torch.no_grad():
        out = selective_scan_triton(*args, True)
        assert_close(out, selective_scan(*args, True, backend="ref"), 1e-10, "no-grad out")
        assert_close(selective_scan(*args, True, backend="triton"), out, 0.0, "dispatcher")
    # inputs that need a gradient, under no_grad: no autograd node either
    leaves = [a.clone().requires_grad_() for a in args]
    with torch.no_grad():
        out2, last = selective_scan_triton(*leaves, True, True)
    assert out2.grad_fn is None and not out2.requires_grad
    assert_close(out2, out, 0.0, "no-grad out with grad-requiring inputs")
    assert_close(last, selective_scan_ref(*args, True, True)[1], 1e-10, "no-grad last state")


class _Ops(TorchDispatchMode):
    """Records the aten ops dispatched inside it."""

    def __init__(self):
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


class _NoLaunch:
    def order(self, consts):
        return None

    def __call__(self, plan, args):
        pass


@pytest.mark.parametrize("copies", [1, 2])
def test_host_side_torch_ops(monkeypatch, copies, device):
    # the work around the kernels, with the launches stubbed out: a no-grad forward allocates
    # its output and nothing else; forward + backward allocates out, states, ygate and one
    # buffer for du, ddelta, dz, fills one sum buffer and takes one view of it per gradient, sums
    # the dB/dC copies (when more than one); no cast from Python
    monkeypatch.delenv("SSMBENCH_POISON_OUTPUTS")
    monkeypatch.setattr(ts, "FWD", _NoLaunch())
    monkeypatch.setattr(ts, "BWD", _NoLaunch())
    x = make_inputs(Case(2, 4, 16, 4, dtype=torch.bfloat16), seed=0, device=device)
    args = [x[k] for k in NAMES]
    cfg = TritonScanConfig(LaunchShape(block_d=2), LaunchShape(block_d=2), dbc_copies=copies)  # 2 programs
    with _Ops() as rec:
        selective_scan_triton(*args, True, config=cfg)
    assert rec.ops == ["empty_like"]
    leaves = [a.clone().requires_grad_() for a in args]
    dout = torch.ones_like(args[0])
    with _Ops() as rec:
        out = selective_scan_triton(*leaves, True, config=cfg)
        grads = torch.autograd.grad(out, leaves, dout)
    # the gradients are views of the sum buffer and of one du/ddelta/dz buffer; with copies, the
    # sum over them; the last two casts (fp32 dB, dC to bf16) are the autograd engine's own
    sums = ["as_strided", "sum", "transpose", "unbind", "view", "view"] if copies > 1 else []
    assert rec.ops == [
        "empty_like", "empty", "empty_like", "zeros", "as_strided", "as_strided", "empty", "unbind",
        "as_strided", "as_strided", "as_strided", *sums, "_to_copy", "_to_copy",
    ], rec.ops
    for k, g in zip(NAMES, grads, strict=True):
        assert (g.shape, g.dtype) == (x[k].shape, x[k].dtype), k


def test_poisoning_follows_the_environment(monkeypatch, device):
    # what one call needs is cached, poisoning included: switching it between calls of one
    # process still switches every fresh buffer the kernels write (launches stubbed out)
    monkeypatch.setattr(ts, "FWD", _NoLaunch())
    monkeypatch.setattr(ts, "BWD", _NoLaunch())
    x = make_inputs(Case(2, 4, 16, 4), seed=0, device=device)
    leaves = [x[k].clone().requires_grad_() for k in NAMES]
    dout = torch.ones_like(x["u"])
    for flag in ("1", "0", "1"):
        monkeypatch.setenv("SSMBENCH_POISON_OUTPUTS", flag)
        with _Ops() as rec:
            out, _ = selective_scan_triton(*leaves, True, True)
            torch.autograd.grad(out, leaves, dout)
        # out, last state, states, ygate; du, ddelta, dz in one buffer
        fresh = rec.ops.count("empty") + rec.ops.count("empty_like")
        nan = rec.ops.count("full")
        assert (nan, fresh) == ((5, 0) if flag == "1" else (0, 5)), (flag, rec.ops)


def test_triton_config_checks():
    with pytest.raises(BadInput):
        TritonScanConfig(LaunchShape(block_l=16), LaunchShape(block_l=8))
    with pytest.raises(BadInput):
        LaunchShape(block_d=6)
    with pytest.raises(BadInput):
        TritonScanConfig(dbc_copies=-1)
    with pytest.raises(BadInput):
        TritonScanConfig(fwd=LaunchShape(block_n=16))
    with pytest.raises(BadInput):
        LaunchShape(block_n=24)


def test_default_config(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    cfg = default_config()
    assert (cfg.fwd.block_d, cfg.fwd.block_l, cfg.bwd.block_d, cfg.bwd.block_l) == (16, 8, 4, 16)
    assert cfg.dbc_copies == 1
    for n in (1, 3, 16, 17, 32, 64, 100, 128, 256):
        cfg = default_config(8, 1536, 2048, n)
        assert (cfg.fwd, cfg.bwd) == ts.SHAPES[min(max(triton.next_power_of_2(n), 16), 128)]
        assert cfg.bwd.block_l % cfg.fwd.block_l == 0
    # one dB/dC copy at every L (a sum over copies costs an op per call where the host sets the pace)
    assert default_config(8, 2048, 256, 16).dbc_copies == default_config(8, 2048, 4096, 16).dbc_copies == 1
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert default_config().fwd.block_d == 4


def test_device_shapes_fit_registers():
    # the per-N shapes keep the elements per thread of one tile where N = 16 has them
    for n, (fwd, bwd) in ts.SHAPES.items():
        assert fwd.block_l * n * fwd.block_d <= 64 * 32 * fwd.num_warps, (n, fwd)
        bwd_n = min(n, bwd.block_n or n)
        assert bwd.block_l * bwd_n * bwd.block_d <= 32 * 32 * bwd.num_warps, (n, bwd)
        assert bwd.block_l % fwd.block_l == 0


# --- the launcher: Triton's own path under the interpreter, the compiled-kernel path on GPUs


def test_launcher_path_follows_the_interpreter():
    # the kernels are decorated once, at import: under the interpreter they are no JITFunction and
    # go through Triton's own path; compiled (a GPU), through the cached launcher
    compiled = not triton_interpreting()
    assert ts.FWD.fast == compiled and ts.BWD.fast == compiled
    if not compiled:
        assert ts.FWD.order({"X": 1}) is None


class _Compiled:
    def __init__(self, log, fail=False):
        self.log, self.fail = log, fail
        self.function, self.packed_metadata = "fn", "meta"

    @property
    def run(self):
        def launch(*a):
            if self.fail:
                raise TypeError("launcher signature changed")
            self.log.append(("fast", a))
        return launch


class _FakeKernel(JITFunction):
    """A real JITFunction (its parameters), launched by a recorder instead of Triton."""

    def __init__(self, fn, log, fail=False):
        super().__init__(fn)
        self.log, self.fail = log, fail

    def __getitem__(self, grid):
        def launch(*args, **kwargs):
            self.log.append(("triton", grid, args, kwargs))
            return _Compiled(self.log, self.fail)
        return launch


def _toy(x, n, ALPHA: triton.language.constexpr, BETA: triton.language.constexpr):
    pass


class _Driver:
    def get_current_device(self):
        return 0

    def get_current_stream(self, device):
        return 1234


@pytest.mark.parametrize("fail", [False, True], ids=["fast", "fallback"])
def test_launcher_caches_per_specialisation(monkeypatch, fail):
    monkeypatch.setattr(ts, "driver", type("D", (), {"active": _Driver()})())
    log = []
    launcher = ts._Launcher(_FakeKernel(_toy, log, fail))
    assert launcher.fast and launcher.const_names == ("ALPHA", "BETA")
    consts = {"BETA": 2, "ALPHA": 1}

    def plan(n):
        return ts._plan((3, 2, 1), consts, launcher, (("num_warps", 1),), (n,), 0)

    x = torch.zeros(64)
    for n in (32, 48, 33):
        launcher(plan(n), (x,))
    if fail:
        # the compiled launcher refused the call: Triton's path from then on, nothing lost
        assert [e[0] for e in log] == ["triton", "triton", "triton"] and not launcher.fast
        return
    # 32 and 48 specialise alike (% 16 == 0): one compile, then the launcher with every
    # parameter in order, the pointer as an integer, constexprs last; 33 is another specialisation
    assert [e[0] for e in log] == ["triton", "fast", "triton"]
    assert log[0][1:] == ((3, 2, 1), (x, 32), {"ALPHA": 1, "BETA": 2, "num_warps": 1})
    assert log[1][1] == (3, 2, 1, 1234, "fn", "meta", None, None, None, x.data_ptr(), 48, 1, 2)
    launcher(plan(48), (x[1:],))  # a misaligned pointer is another specialisation
    assert log[-1][0] == "triton"
    launcher(plan(48), (x.double(),))  # and so is another dtype
    assert log[-1][0] == "triton"
    launcher(plan(48), (x[4:],))  # 16-byte aligned again: the first compile's
    assert log[-1][0] == "fast" and log[-1][1][9] == x[4:].data_ptr()


@pytest.mark.parametrize("kernel", ["fwd", "bwd"])
def test_launch_key_as_fine_as_triton(kernel):
    # equal _launch_key and _int_key => equal Triton cache key, for the real kernels' parameters, sm_90
    fn = (ts.selective_scan_fwd_kernel if kernel == "fwd" else ts.selective_scan_bwd_kernel).fn
    jit = JITFunction(fn)
    backend = make_backend(GPUTarget("cuda", 90, 32))
    binder = create_function_from_signature(jit.signature, jit.params, backend)
    n_int = sum(not p.is_constexpr for p in jit.params) - jit.arg_names.index("L")
    n_ptr = jit.arg_names.index("L")
    consts = {p.name: 1 for p in jit.params if p.is_constexpr}
    buf = torch.zeros(64)
    variants = []
    for ptr in (buf, buf[1:], buf[4:], buf.double(), buf.bfloat16()):
        # the first two differ in value but not in what is specialised on
        for ints in ((32, 16, 16, 1, 1, 2), (2048, 1536, 64, 1, 1, 18), (17, 16, 16, 2, 4, 3),
                     (33, 6, 3, 3, 2, 1), (2**31, 16, 16, 1, 1, 32)):
            tensors = (ptr,) + (buf,) * (n_ptr - 1)
            _, spec, opts = binder(*tensors, *ints[:n_int], **consts, num_warps=1)
            mine = (ts._launch_key(tensors, [t.data_ptr() for t in tensors]), ts._int_key(ints[:n_int]))
            variants.append((mine, compute_cache_key({}, spec, opts)))
    same = [(t1, t2) for m1, t1 in variants for m2, t2 in variants if m1 == m2]
    assert len(same) > len(variants)  # some distinct calls share a key
    assert all(t1 == t2 for t1, t2 in same)


def test_host_tensors_never_reach_the_compiled_kernels(monkeypatch):
    # the compiled path hands the kernels raw pointers: any input left on the host is refused
    # before a launch (under the interpreter, host tensors are the point)
    from ssmbench.errors import BackendUnavailable

    monkeypatch.setattr(ts, "triton_interpreting", lambda: False)
    x = make_inputs(Case(1, 4, 8, 4, dtype=torch.float32), seed=0)
    launched = []
    monkeypatch.setattr(ts, "FWD", lambda plan, tensors: launched.append(plan))
    with pytest.raises(BackendUnavailable, match="CUDA"):
        selective_scan_triton(*[x[k] for k in NAMES], True)
    if torch.cuda.is_available():
        for k in ("delta", "A", "B", "C", "D", "z", "delta_bias"):
            mixed = {n: t.cuda() for n, t in x.items()} | {k: x[k]}
            with pytest.raises(BackendUnavailable, match="CUDA"):
                selective_scan_triton(*[mixed[n] for n in NAMES], True)
    assert not launched
