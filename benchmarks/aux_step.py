"""UniDual-Aux training step vs R(2+1)D-multitask training step on the same mixed batch.

    .venv/bin/python benchmarks/aux_step.py                 # slim and full settings; updates the docs
    .venv/bin/python benchmarks/aux_step.py --compile       # also UniDual-Aux under torch.compile
    .venv/bin/python benchmarks/aux_step.py --settings slim --no-write

Both steps go through the trainer's own code: ``LossModule(model, Objective(...))`` from
unidual/train/objectives.py with the default aux settings (``routing: both``, ``frame: random``,
weight 1), then backward and an SGD step. R(2+1)D-multitask runs the images as static clips with
the clips (one video-pathway forward); UniDual-Aux runs that same video-pathway forward (clips +
images inflated for their aux loss) plus one image-pathway forward over the images and one
frame per clip. The batch is ``--images`` images + ``--clips`` clips of 8 frames.
Settings: ``slim`` = the study network (depth 10, width 0.25, 32 px), ``full`` = depth 18,
width 1, 112 px.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import torch
from common import add_run_args, interleaved, median, provenance, save_summary, start_run, table, write_section
from torch import nn

from unidual.models import create_model, get_model_def
from unidual.train.compiled import CompiledModel
from unidual.train.objectives import LossModule, Objective

SECTION = "UniDual-Aux vs R(2+1)D-multitask training step"
SETTINGS = {"slim": (10, 0.25, 32), "full": (18, 1.0, 112)}  # name -> (depth, width, size)
MODALITIES = {"images": "image", "clips": "video"}


def batch(images: int, clips: int, frames: int, size: int) -> dict[str, dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return {
        "images": {
            "input": torch.randn(images, 3, size, size, generator=g),
            "label": torch.randint(10, (images,), generator=g),
        },
        "clips": {
            "input": torch.randn(clips, 3, frames, size, size, generator=g),
            "label": torch.randint(30, (clips,), generator=g),
        },
    }


def step_fn(
    name: str, depth: int, width: float, frames: int, sub: dict[str, dict[str, torch.Tensor]], compile: bool = False
) -> tuple[Callable[[], None], nn.Module]:
    """A training step of one model through the trainer's LossModule + Objective (compiled as run.compile does),
    and the model that step calls (the ``CompiledModel`` when ``compile``)."""
    definition = get_model_def(name)
    extra = {"modalities": MODALITIES} if definition.heads_by_modality else {}
    model = create_model(name, depth=depth, width=width, heads={"images": 10, "clips": 30}, frames=frames, **extra)
    module = LossModule(
        CompiledModel(model) if compile else model, Objective(MODALITIES, aux=definition.aux_heads)
    ).train()  # aux defaults: routing both, random frame
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    gen = torch.Generator().manual_seed(0)

    def step() -> None:
        loss, _ = module(sub, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step, module.model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument(
        "--rounds", type=int, nargs="+", default=[9, 3], help="interleaved rounds per setting, in --settings order"
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="also time UniDual-Aux compiled as run.compile does (~1 min of compiling per setting)",
    )
    add_run_args(parser)
    args = parser.parse_args()
    load_before = start_run(args)
    rows, summary = [], []
    for i, setting in enumerate(args.settings):
        depth, width, size = SETTINGS[setting]
        rounds = args.rounds[min(i, len(args.rounds) - 1)]
        sub = batch(args.images, args.clips, args.frames, size)
        aux, _ = step_fn("unidual_aux", depth, width, args.frames, sub)
        multi, _ = step_fn("r2plus1d_multitask", depth, width, args.frames, sub)
        fns = {"unidual_aux": aux, "r2plus1d_multitask": multi}
        if args.compile:
            fns["unidual_aux-compiled"] = step_fn("unidual_aux", depth, width, args.frames, sub, compile=True)[0]
        print(f"{setting}: depth {depth}, width {width}, {size} px", file=sys.stderr)
        times = interleaved(fns, rounds=rounds, warmup=2)
        a, m = median(times["unidual_aux"]), median(times["r2plus1d_multitask"])
        ratio, ratio_min = a / m, min(times["unidual_aux"]) / min(times["r2plus1d_multitask"])
        compiled = (
            (
                f"{median(times['unidual_aux-compiled']) * 1e3:.0f} ({a / median(times['unidual_aux-compiled']):.2f}x "
                "faster than eager)"
            )
            if args.compile
            else "not timed"
        )
        rows.append(
            [
                setting,
                f"{depth} / {width} / {size} px",
                f"{a * 1e3:.0f}",
                f"{m * 1e3:.0f}",
                f"**{ratio:.2f}x**",
                f"{ratio_min:.2f}x",
                compiled,
                str(rounds),
            ]
        )
        summary.append(
            {
                "metric": f"UniDual-Aux / R(2+1)D-multitask training step time ({setting}: depth {depth}, "
                f"width {width}, {size} px, {args.images}+{args.clips})",
                "target": "<= 1.3x" if setting == "full" else "(info)",
                "measured": f"{ratio:.2f}x",
                "met": ratio <= 1.3 if setting == "full" else None,
                "note": f"from the least-disturbed rounds {ratio_min:.2f}x",
            }
        )
    body = "\n".join(
        [
            provenance(load_before),
            f"Same mixed batch for both: {args.images} images + {args.clips} clips of {args.frames} frames; the "
            "trainer's `LossModule` + `Objective` (aux routing `both`, random frame, weight 1) + backward + SGD step. "
            "Medians of interleaved rounds after two warm-up steps each.",
            "",
            table(
                [
                    "setting",
                    "depth / width / size",
                    "UniDual-Aux ms",
                    "R(2+1)D-multitask ms",
                    "time ratio",
                    "(from mins)",
                    "UniDual-Aux with run.compile, ms",
                    "rounds",
                ],
                rows,
            ),
            "",
            "UniDual-Aux costs the same video-pathway pass as R(2+1)D-multitask (clips + static clips of the "
            "images) plus an image-pathway pass over the images and one frame per clip, which costs about "
            "1/5-1/6 of a clip each (see the image-pathway section), plus backward.",
        ]
    )
    print(body)
    if not args.no_write:
        write_section(SECTION, body)
        save_summary("aux_step", summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
