"""unidual's R(2+1)D-18 vs the plain-PyTorch (torchvision) R(2+1)D-18: training step and forward speed.

    .venv/bin/python benchmarks/model_speed.py                    # batch 8, 8x112x112; updates the docs
    .venv/bin/python benchmarks/model_speed.py --compile          # also time torch.compile
    .venv/bin/python benchmarks/model_speed.py --batch 2 --rounds 3 --no-write   # quick look

Variants, timed in interleaved rounds after a warm-up (see benchmarks/common.py):

* ``reference``     -- R(2+1)D-18 exactly as torchvision defines it (benchmarks/reference.py), in
                       PyTorch's default contiguous layout: what a plain PyTorch user runs;
* ``unidual``       -- ``create_model("r2plus1d", depth=18, layout="torchvision")`` with its defaults
                       (channels-last weights, unidual.models.memory);
* ``unidual-contiguous`` -- the same with ``channels_last=False`` (what the layout alone buys);
* ``reference-channels-last`` -- the reference converted with ``.to(memory_format=channels_last_3d)``
                       (for honesty: the gain is the layout, which plain PyTorch can opt into too);
* ``unidual-compiled`` -- ``torch.compile`` of the default model (``--compile``).

A training step is forward + cross-entropy + backward + SGD (momentum 0.9) step; forward is
``eval()`` + ``no_grad``. FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` on the
``meta`` device (the exact conv FLOPs of forward and backward: backward ~2x forward, minus the
input gradient of the first conv), cross-checked against unidual's own MAC counter
(``unidual info``); the fp32 peak is the best ``torch.mm`` GFLOP/s, probed in every round.
Before timing, the reference weights are copied into unidual (``torchvision_keys.from_torchvision``) and
the outputs (eval and train mode) and gradients are asserted equal within float tolerance.
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Callable

import torch
import torch.nn.functional as F
from common import (
    interleaved,
    load_average,
    machine_line,
    matmul_gflops,
    matmul_peak,
    median,
    save_summary,
    table,
    write_section,
)
from reference import reference_r2plus1d_18
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from unidual.models import create_model, set_memory_format
from unidual.models.report import count_macs
from unidual.models.torchvision_keys import from_torchvision
from unidual.train.compiled import CompiledModel

SECTION = "Model speed: R(2+1)D-18 vs plain PyTorch"
CLASSES = 400


def _logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = model(x)
    return out["k400"] if isinstance(out, dict) else out


def _randomise_bn(model: nn.Module) -> None:
    """Non-trivial BN statistics, so the eval-mode check cannot pass through identity BNs."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm3d):
                m.running_mean.copy_(torch.rand(m.num_features, generator=g) * 0.2 - 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)


def _grads(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Train-mode loss and every parameter gradient (float64 copies), in parameter order."""
    model.train().zero_grad(set_to_none=True)
    loss = F.cross_entropy(_logits(model, x), y)
    loss.backward()
    return loss.detach().double(), [p.grad.double() for p in model.parameters()]


def _worst_rel(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """Largest per-tensor relative difference ||a - b|| / ||b|| over all gradients."""
    return max(float((u - v).norm() / v.norm().clamp_min(1e-30)) for u, v in zip(a, b))


def check_numerics(reference: nn.Module, frames: int, size: int = 32, batch: int = 4) -> str:
    """Copy the reference's weights into unidual (channels-last) and assert equal outputs and gradients.

    Eval-mode logits and the training loss must agree to float rounding. Gradients pass through
    18 train-mode BatchNorms on a small batch, which amplifies rounding; so they are compared by
    relative norm, next to the error the contiguous fp32 reference itself has against float64.
    """
    ref = copy.deepcopy(reference)
    _randomise_bn(ref)
    ours = from_torchvision(ref.state_dict(), head="k400", frames=frames)  # channels-last by default
    g = torch.Generator().manual_seed(2)
    x = torch.randn(batch, 3, frames, size, size, generator=g)
    y = torch.randint(CLASSES, (batch,), generator=g)
    with torch.no_grad():
        a, b = ref.eval()(x), _logits(ours.eval(), x)
    torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
    la, ga = _grads(ref, x, y)
    lb, gb = _grads(ours, x, y)
    l64, g64 = _grads(copy.deepcopy(ref).double(), x.double(), y)
    torch.testing.assert_close(lb, la, rtol=1e-5, atol=1e-6)
    head = _worst_rel(gb[-2:], ga[-2:])  # classifier: one layer from the loss, well conditioned
    assert head < 1e-3, f"classifier gradients differ by {head:.3g}"
    ours_vs_ref, ref_vs_64, ours_vs_64 = _worst_rel(gb, ga), _worst_rel(ga, g64), _worst_rel(gb, g64)
    assert ours_vs_ref < 0.05 and ours_vs_64 < 0.05, f"gradients differ: {ours_vs_ref:.3g} / {ours_vs_64:.3g}"
    return (
        f"eval logits max |diff| {float((a - b).abs().max()):.1e}; train loss {float(la):.7f} vs "
        f"{float(lb):.7f}; classifier gradient difference {head:.1e}; worst per-tensor gradient difference ||g_unidual - g_ref|| / ||g_ref|| = "
        f"{ours_vs_ref:.1e} (against float64: unidual {ours_vs_64:.1e}, contiguous fp32 reference "
        f"{ref_vs_64:.1e}) on {batch} clips of {frames}x{size}x{size}"
    )


def count_flops(batch: int, frames: int, size: int) -> dict[str, float]:
    """Forward and forward+backward FLOPs of the unidual model, on the meta device."""
    with torch.device("meta"):
        model = create_model("r2plus1d", depth=18, layout="torchvision", heads={"k400": CLASSES}, frames=frames)
        x = torch.randn(batch, 3, frames, size, size)
        macs = count_macs(model, x)
        with FlopCounterMode(display=False) as fwd:
            _logits(model, x)
        with FlopCounterMode(display=False) as train:
            _logits(model, x).sum().backward()
    return {"forward": fwd.get_total_flops(), "train": train.get_total_flops(), "macs": macs}


def train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    model.train()

    def step() -> None:
        loss = F.cross_entropy(_logits(model, x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def forward(model: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        model.eval()
        with torch.no_grad():
            _logits(model, x)

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timed rounds (median reported)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile of the unidual model")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/performance.md alone")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(machine_line(), file=sys.stderr)

    reference, ref_name = reference_r2plus1d_18(CLASSES)
    numerics = check_numerics(reference, args.frames)
    print("numerics OK:", numerics, file=sys.stderr)
    flops = count_flops(args.batch, args.frames, args.size)
    params = sum(p.numel() for p in reference.parameters())

    ours = from_torchvision(reference.state_dict(), head="k400", frames=args.frames)
    models: dict[str, nn.Module] = {
        "reference": reference,
        "unidual": ours,
        "unidual-contiguous": set_memory_format(copy.deepcopy(ours), channels_last=False),
        "reference-channels-last": copy.deepcopy(reference).to(memory_format=torch.channels_last_3d),
    }
    if args.compile:
        models["unidual-compiled"] = CompiledModel(copy.deepcopy(ours))  # as run.compile does
    x = torch.randn(args.batch, 3, args.frames, args.size, args.size)
    y = torch.randint(CLASSES, (args.batch,))

    peaks: list[float] = [matmul_peak()]
    in_round: list[float] = []  # matmul GFLOP/s of each call of the probe (the first is its warm-up)

    def probe() -> None:  # the matmul rate, probed every round under the same load as the models
        in_round.append(matmul_gflops(2048))

    load_before = load_average()
    print("training steps:", file=sys.stderr)
    train_t = interleaved(
        {**{n: train_step(m, x, y) for n, m in models.items()}, "matmul-probe": probe}, rounds=args.rounds, warmup=2
    )  # CompiledModel compiles on the 2nd call
    print("forward passes:", file=sys.stderr)
    fwd_t = interleaved({n: forward(m, x) for n, m in models.items()}, rounds=3 * args.rounds)  # short: more
    peaks += in_round + [matmul_peak()]
    load_after = load_average()
    peak = max(peaks)
    round_rates = in_round[-args.rounds :]

    def same_round_pct(name: str) -> float:
        """Median over rounds of (train GFLOP/s in round r) / (matmul GFLOP/s in round r)."""
        return 100 * median([flops["train"] / t / 1e9 / r for t, r in zip(train_t[name], round_rates)])

    ref_train, ref_fwd = median(train_t["reference"]), median(fwd_t["reference"])
    rows, results = [], {}
    for name in models:
        tr, fw = median(train_t[name]), median(fwd_t[name])
        gflops = flops["train"] / tr / 1e9
        results[name] = {"train": tr, "fwd": fw, "gflops": gflops}
        rows.append(
            [
                f"`{name}`",
                f"{tr * 1e3:.0f}",
                f"{min(train_t[name]) * 1e3:.0f}",
                f"{ref_train / tr:.2f}x",
                f"{min(train_t['reference']) / min(train_t[name]):.2f}x",
                f"{fw * 1e3:.0f}",
                f"{ref_fwd / fw:.2f}x",
                f"{min(fwd_t['reference']) / min(fwd_t[name]):.2f}x",
                f"{gflops:.0f}",
                f"{100 * gflops / peak:.0f} %",
                f"{same_round_pct(name):.0f} %",
            ]
        )
    ratio = ref_train / results["unidual"]["train"]
    pct = same_round_pct("unidual")
    pct_best = 100 * results["unidual"]["gflops"] / peak
    command = "python benchmarks/model_speed.py " + " ".join(sys.argv[1:])
    body = "\n".join(
        [
            f"`{command.strip()}` on {machine_line()}; load average {load_before} before, {load_after} after "
            "(the machine is shared).",
            f"Input: batch {args.batch} of {args.frames}x{args.size}x{args.size} clips, {CLASSES} classes, "
            f"{params / 1e6:.2f} M parameters. Reference: {ref_name}.",
            f"Medians of {args.rounds} (training) / {3 * args.rounds} (forward) interleaved rounds after one warm-up "
            "call each; `min` / `from mins` use the least-disturbed round. Ratio = reference time / variant time "
            "(> 1: faster than the reference).",
            "",
            table(
                [
                    "variant",
                    "train step ms (median)",
                    "min",
                    "speed vs reference",
                    "(from mins)",
                    "forward ms",
                    "forward speed vs ref.",
                    "(from mins)",
                    "train GFLOP/s",
                    "% of best matmul",
                    "% of same-round matmul",
                ],
                rows,
            ),
            "",
            f"FLOPs (FlopCounterMode, meta device): forward {flops['forward'] / 1e9:.1f} GFLOP, training step "
            f"{flops['train'] / 1e9:.1f} GFLOP = {flops['train'] / flops['forward']:.2f}x forward "
            f"(unidual's MAC counter: {flops['macs'] / 1e9:.1f} GMAC = {2 * flops['macs'] / 1e9:.1f} GFLOP forward). "
            f"fp32 matmul (`torch.mm`, 1024-3072², before and after, and 2048² in every round): best {peak:.0f} "
            f"GFLOP/s, range {min(peaks):.0f}-{max(peaks):.0f}; the last column divides each round's training "
            "rate by that round's matmul rate, which cancels most of the background load.",
            f"Numerics (reference weights copied into channels-last unidual, asserted before timing): {numerics}.",
        ]
    )
    print(body)
    if not args.no_write:
        write_section(SECTION, body)
        save_summary(
            "model_speed",
            [
                {
                    "metric": f"R(2+1)D-18 training step speed vs plain PyTorch (batch {args.batch}, "
                    f"{args.frames}x{args.size}²)",
                    "target": ">= 1.3x",
                    "measured": f"{ratio:.2f}x",
                    "met": ratio >= 1.3,
                    "note": f"from the least-disturbed rounds {min(train_t['reference']) / min(train_t['unidual']):.2f}x; "
                    "channels-last default; "
                    + (
                        f"with run.compile: {ref_train / results['unidual-compiled']['train']:.2f}x"
                        if args.compile
                        else "compile not timed"
                    ),
                },
                {
                    "metric": "R(2+1)D-18 forward speed vs plain PyTorch",
                    "target": "(info)",
                    "measured": f"{ref_fwd / results['unidual']['fwd']:.2f}x",
                    "met": None,
                    "note": f"from the least-disturbed rounds {min(fwd_t['reference']) / min(fwd_t['unidual']):.2f}x",
                },
                {
                    "metric": "training step GFLOP/s as % of fp32 matmul rate (same round)",
                    "target": ">= 70 %",
                    "measured": f"{pct:.0f} %",
                    "met": pct >= 70,
                    "note": f"{results['unidual']['gflops']:.0f} GFLOP/s = {pct_best:.0f} % of the best matmul "
                    f"({peak:.0f} GFLOP/s) of the run",
                },
            ],
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
