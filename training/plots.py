"""Training curves as PNG images: one run's curves for its artifacts, several runs overlaid for comparison."""
import io

import matplotlib

matplotlib.use("Agg")
from matplotlib import pyplot  # noqa: E402  (the backend must be chosen before pyplot is imported)


def curve_names(epoch_metrics):
    """Numeric metric names present in a run's per-epoch entries (in first-seen order, "epoch" excluded)."""
    names = []
    for entry in epoch_metrics:
        for name, value in entry.items():
            is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if name != "epoch" and is_number and name not in names:
                names.append(name)
    return names


def panel_of(name):
    """Which panel a metric is drawn in: losses, the learning rate, throughput (images/s, seconds) or the 0..1
    scores."""
    if "loss" in name:
        return "loss"
    if name == "lr":
        return "learning rate"
    if name.endswith(("_per_s", "_s", "seconds")):
        return "throughput"
    return "scores"


def curves_png(runs):
    """PNG bytes: losses, the 0..1 scores (accuracies, mAP) on their own axis, the learning rate and throughput,
    each in a panel of its own, one line per (run, metric).

    runs: {label: [per-epoch metric dicts]}.
    """
    figure, panels = pyplot.subplots(2, 2, figsize=(11, 7))
    axes_of = dict(zip(("loss", "scores", "learning rate", "throughput"), panels.flat))
    for label, epoch_metrics in runs.items():
        for name in curve_names(epoch_metrics):
            points = [
                (entry.get("epoch", i + 1), entry[name]) for i, entry in enumerate(epoch_metrics) if name in entry
            ]
            axes_of[panel_of(name)].plot([e for e, _ in points], [v for _, v in points], marker="o",
                                         label=f"{label}: {name}")
    axes_of["scores"].set_ylim(0, 1)
    for title, axes in axes_of.items():
        axes.set_title(title)
        axes.set_xlabel("epoch")
        axes.grid(alpha=0.3)
        if axes.lines:
            axes.legend(fontsize="small")
    return _png(figure, dpi=90)


def localization_curves(metrics):
    """{split: curves} of the WSOL threshold curves in a run's metrics (keys "<split>_localization_curves")."""
    suffix = "_localization_curves"
    return {name[:-len(suffix)]: curves for name, curves in metrics.items() if name.endswith(suffix) and curves}


def localization_png(runs):
    """PNG bytes: BoxAcc against the CAM threshold at each IoU (the maximum is MaxBoxAccV2), and the pixel
    precision-recall curve of PxAP; one line per (run, split). runs: {label: a run's final metrics}."""
    deltas = sorted({delta for metrics in runs.values() for curves in localization_curves(metrics).values()
                     for delta in curves["box_accuracy"]})
    figure, axes = pyplot.subplots(1, len(deltas) + 1, figsize=(4 * (len(deltas) + 1), 3.6), squeeze=False)
    axes = axes[0]
    for label, metrics in runs.items():
        for split, curves in localization_curves(metrics).items():
            for panel, delta in zip(axes, deltas):
                if delta in curves["box_accuracy"]:
                    panel.plot(curves["thresholds"], curves["box_accuracy"][delta], label=f"{label}: {split}")
            if "pixel_precision" in curves:
                axes[-1].plot(curves["pixel_recall"], curves["pixel_precision"], label=f"{label}: {split}")
    for panel, delta in zip(axes, deltas):
        panel.set_title(f"BoxAcc at IoU {delta}")
        panel.set_xlabel("CAM threshold")
    axes[-1].set_title("PxAP: pixel precision-recall")
    axes[-1].set_xlabel("recall")
    for panel in axes:
        panel.set_ylim(0, 1.02)
        panel.grid(alpha=0.3)
        if panel.lines:
            panel.legend(fontsize="small")
    return _png(figure, dpi=80)


def _png(figure, dpi):
    """The figure as PNG bytes (laid out tightly), closed afterwards."""
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    pyplot.close(figure)
    return buffer.getvalue()
