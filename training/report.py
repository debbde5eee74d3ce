"""What a training run records: metrics, the code version, and the training-curve plot."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import numpy as np

from .loop import History

ROOT = Path(__file__).resolve().parent.parent


def code_version() -> str:
    """``git describe`` of the checkout (``-dirty`` if it has local changes), else 'unknown'."""
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=12"],
                             cwd=ROOT, capture_output=True, text=True, timeout=10, check=True)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def regression_metrics(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """RMSE, MAE and the row count, in the target's unit."""
    err = np.asarray(pred, dtype=np.float64) - np.asarray(target, dtype=np.float64)
    return {"rmse": float(np.sqrt(np.mean(err ** 2))), "mae": float(np.mean(np.abs(err))),
            "n": int(err.size)}


def classification_metrics(probabilities: np.ndarray, labels: np.ndarray,
                           classes: int) -> dict:
    """Accuracy, mean cross-entropy, the row count and the confusion matrix
    (rows: true label, columns: predicted)."""
    labels = np.asarray(labels, dtype=np.int64)
    predicted = probabilities.argmax(axis=1)
    confusion = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    picked = probabilities[np.arange(len(labels)), labels].astype(np.float64)
    return {"accuracy": float(np.mean(predicted == labels)),
            "loss": float(-np.mean(np.log(np.maximum(picked, 1e-12)))),
            "n": int(len(labels)), "confusion": confusion.tolist()}


def curves_png(histories: list[History], metric: str, title: str) -> bytes:
    """Loss and validation metric per epoch (one line per ensemble member), as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 4))
    for k, h in enumerate(histories):
        epochs = [e["epoch"] for e in h.epochs]
        suffix = f" {k}" if len(histories) > 1 else ""
        ax_loss.plot(epochs, [e["train_loss"] for e in h.epochs], lw=1,
                     label=f"train{suffix}")
        ax_loss.plot(epochs, [e["val_loss"] for e in h.epochs], lw=1, ls="--",
                     label=f"validation{suffix}")
        ax_metric.plot(epochs, [e[f"val_{metric}"] for e in h.epochs], lw=1,
                       label=f"validation{suffix}")
        ax_metric.axvline(h.best_epoch, color="grey", lw=0.5, ls=":")
    ax_loss.set(xlabel="epoch", ylabel="loss", yscale="log", title="loss")
    ax_metric.set(xlabel="epoch", ylabel=metric, title=f"validation {metric}")
    if len(histories) <= 2:
        ax_loss.legend()
        ax_metric.legend()
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()
