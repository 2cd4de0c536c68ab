"""`unidual visualize CHECKPOINT VIDEO [--block K] --out FIG.png`: the paper's Figures 2 and 3.

The video pathway runs on one centre clip (centre crop) and the image pathway
on its middle frame. Forward hooks on the dual point-wise layer of residual
block K (`unidual.models.pointwise_layers`; default -1 = the last block as in
Figure 2, -3 = third-to-last as in Figure 3) record both pathways' responses.
A channel's activation is the mean of its response over space (and time for
the video pathway, whose maps are then averaged over time for display). The
figure shows the first/middle/last frames, the 3 most activated channels of
the video pathway with the same channels from the image pathway below, then
the 3 most activated channels of the image pathway with the same channels from
the video pathway below. Each channel's two maps share one colour scale, so
"diffused vs peaked" is a fair comparison; maps are overlaid on the middle frame.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import Tensor, nn

from unidual.checkpoint import load_model
from unidual.data.views import file_views
from unidual.evaluate.predict import MAX_SIDE, spec_for
from unidual.models import pointwise_layers
from unidual.pathways import select_frame

TOP = 3


@dataclass
class DualActivations:
    """Responses of one dual point-wise layer: ``video`` (C, T', h, w) on the clip, ``image`` (C, h, w) on the frame."""

    video: Tensor
    image: Tensor
    block: int

    def scores(self, pathway: str) -> Tensor:
        """(C,) mean response per channel: the ranking that picks "most activated"."""
        maps = self.video if pathway == "video" else self.image
        return maps.flatten(1).mean(dim=1)

    def top_channels(self, pathway: str, k: int = TOP) -> list[int]:
        return self.scores(pathway).topk(k).indices.tolist()

    def map(self, pathway: str, channel: int) -> Tensor:
        """(h, w) map of one channel (video maps averaged over time)."""
        return self.video[channel].mean(dim=0) if pathway == "video" else self.image[channel]


def _capture(layer: nn.Module, store: list[Tensor]):
    return layer.register_forward_hook(lambda _m, _i, out: store.append(out.detach()))


@torch.no_grad()
def dual_activations(model: nn.Module, clip: Tensor, block: int = -1) -> DualActivations:
    """Hook block ``block``'s point-wise layers; video pathway on ``clip`` (3,T,H,W), image pathway on its middle frame."""
    if clip.dim() != 4:
        raise ValueError(f"expected one clip (3, T, H, W), got shape {tuple(clip.shape)}")
    pathways = tuple(getattr(model, "pathways", ()))
    if set(pathways) != {"image", "video"}:
        raise ValueError(f"visualize needs a model with both pathways (unidual / unidual_aux), got {pathways}")
    layers = {p: pointwise_layers(model, p) for p in ("video", "image")}
    n = len(layers["video"])
    if not -n <= block < n:
        raise ValueError(f"--block {block}: the model has {n} residual blocks (use 0..{n - 1} or -{n}..-1)")
    model.eval()
    batch = clip.unsqueeze(0)
    outputs: dict[str, list[Tensor]] = {"video": [], "image": []}
    inputs = {"video": batch, "image": select_frame(batch, "middle")}
    for pathway in ("video", "image"):
        handle = _capture(layers[pathway][block], outputs[pathway])
        try:
            model(inputs[pathway], pathway=pathway)
        finally:
            handle.remove()
        if len(outputs[pathway]) != 1:
            raise RuntimeError(f"the {pathway} point-wise layer of block {block} ran {len(outputs[pathway])} times")
    video, image = outputs["video"][0][0].float().cpu(), outputs["image"][0][0].float().cpu()
    if image.dim() == 4:  # a t=1 conv run on a (N,C,1,H,W) clip
        image = image[:, 0]
    return DualActivations(video=video, image=image, block=block % n)


def centre_clip(path: str | Path, payload: Mapping[str, Any], max_side: int = MAX_SIDE) -> tuple[Tensor, Any]:
    """The centre clip (centre crop) of a video, normalised as the run's video source, and that source spec.

    ``max_side`` bounds the frames when the run's test transform keeps the native size, as in ``predict``.
    """
    spec = copy.deepcopy(spec_for(payload, "video"))
    spec.clip.num_clips = 1
    spec.transform.test_crops = 1
    return file_views(path, "video", spec, max_side)[0], spec


def _display(frame: Tensor, mean: list[float], std: list[float]) -> Tensor:
    """Normalised (3, H, W) -> (H, W, 3) in [0, 1] for imshow."""
    m = torch.tensor(mean).view(3, 1, 1)
    s = torch.tensor(std).view(3, 1, 1)
    return (frame * s + m).clamp(0, 1).permute(1, 2, 0)


def _upsample(m: Tensor, size: tuple[int, int]) -> Tensor:
    return F.interpolate(m[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]


def plot_figure(
    clip: Tensor, acts: DualActivations, out: str | Path, *, mean: list[float], std: list[float], title: str = ""
) -> Path:
    """Write the Figure-2/3 style PNG; returns its path (``.png`` added to a name without a suffix)."""
    out = Path(out)
    out = out if out.suffix else out.with_name(out.name + ".png")  # what savefig would write: say so
    out.parent.mkdir(parents=True, exist_ok=True)
    t = clip.shape[1]
    frames = [_display(clip[:, i], mean, std) for i in (0, t // 2, t - 1)]
    middle = frames[1]
    height, width = middle.shape[:2]
    size = (height, width)
    groups = [("video", acts.top_channels("video")), ("image", acts.top_channels("image"))]
    cols = 3 + TOP * len(groups)
    fig = Figure(figsize=(1.7 * cols, 4.2))
    axes = fig.subplots(2, cols)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=0.82, wspace=0.06, hspace=0.22)
    for ax in axes.flat:
        ax.axis("off")
    for i, (frame, name) in enumerate(zip(frames, ("first", "middle", "last"))):
        axes[0, i].imshow(frame.numpy())
        axes[0, i].set_title(f"{name} frame", fontsize=8)
    col = 3
    for ranked_by, channels in groups:
        other = "image" if ranked_by == "video" else "video"
        for c in channels:
            maps = {p: _upsample(acts.map(p, c), size) for p in (ranked_by, other)}
            lo = min(float(m.min()) for m in maps.values())
            hi = max(float(m.max()) for m in maps.values())
            for row, pathway in enumerate((ranked_by, other)):
                ax = axes[row, col]
                ax.imshow(middle.numpy())
                ax.imshow(maps[pathway].numpy(), cmap="jet", alpha=0.5, vmin=lo, vmax=hi if hi > lo else lo + 1)
                ax.text(
                    1,
                    1,
                    f"#{c}",
                    color="0.75",
                    fontsize=8,
                    va="top",
                    bbox={"facecolor": "black", "alpha": 0.4, "pad": 1},
                )
                ax.set_title(f"{pathway} pathway", fontsize=7)
            col += 1
        first = axes[0, col - TOP].get_position()
        fig.text(
            first.x0,
            first.y1 + 0.07,
            f"top-{TOP} channels of the {ranked_by} pathway (below: same channels, {other} pathway)",
            fontsize=8,
        )
    fig.suptitle(title or f"dual point-wise layer of block {acts.block}", fontsize=10)
    fig.savefig(out, dpi=110)
    return out


def visualize(
    checkpoint: str | Path,
    video: str | Path,
    out: str | Path,
    *,
    block: int = -1,
    device: str | torch.device = "cpu",
    max_side: int = MAX_SIDE,
) -> dict[str, Any]:
    """Python API: write the figure; returns ``{"block", "video_top", "image_top", "out"}``."""
    model, payload = load_model(checkpoint, deploy=True)
    clip, spec = centre_clip(video, payload, max_side)
    acts = dual_activations(model.to(device), clip.to(device), block)
    out = plot_figure(
        clip,
        acts,
        out,
        mean=spec.transform.mean,
        std=spec.transform.std,
        title=f"{Path(video).name}: dual point-wise layer of block {acts.block}",
    )
    return {
        "block": acts.block,
        "video_top": acts.top_channels("video"),
        "image_top": acts.top_channels("image"),
        "out": str(out),
    }
