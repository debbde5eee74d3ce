"""Housing accuracy: our default ensemble beside scikit-learn models, on the same splits.

Two protocols, each over several seeds (min / median / max RMSE, $1000s):
- DESIGN.md: first 80% of rows (file order) train, last 20% test (a shifted split);
- shuffled 5-fold cross-validation.
Our model gets a seeded 15% validation slice of its training rows (for early stopping);
the scikit-learn models train on all of them.

    python bench/housing_accuracy.py --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from training.datasets import load_housing  # noqa: E402
from training.housing import DEFAULTS, fit_ensemble  # noqa: E402


def rmse(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(pred, np.float64) - y) ** 2)))


def ours(x, y, train, test, seed, hp):
    rng = np.random.default_rng(seed)
    order = rng.permutation(train)
    n_val = round(hp["val_fraction"] * len(train))
    model = fit_ensemble(x, y, np.sort(order[n_val:]), np.sort(order[:n_val]), hp, seed, False)
    from training.run import in_memory_predictor

    return in_memory_predictor(model.manifest_part(), model.network).predict(x[test])


def sklearn_models():
    try:
        from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
        from sklearn.linear_model import LinearRegression
        from sklearn.neural_network import MLPRegressor
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
    except ImportError:
        print("scikit-learn not installed (pip install -e '.[bench]'): ours only",
              file=sys.stderr)
        return {}
    return {
        "scikit-learn GradientBoosting": lambda s: GradientBoostingRegressor(random_state=s),
        "scikit-learn RandomForest": lambda s: RandomForestRegressor(random_state=s),
        "scikit-learn LinearRegression": lambda s: make_pipeline(StandardScaler(),
                                                                 LinearRegression()),
        "scikit-learn MLPRegressor(64, 64)": lambda s: make_pipeline(
            StandardScaler(), MLPRegressor(hidden_layer_sizes=(64, 64), max_iter=2000,
                                           early_stopping=True, random_state=s)),
    }


def splits(n: int, protocol: str, seed: int):
    if protocol == "design":
        cut = int(0.8 * n)
        yield np.arange(cut), np.arange(cut, n)
        return
    order = np.random.default_rng(seed).permutation(n)
    for fold in np.array_split(order, 5):
        yield np.setdiff1d(order, fold), np.sort(fold)


def score(fit_predict, x, y, protocol, seed) -> float:
    """RMSE over all test rows of the protocol (pooled over the 5 folds for CV)."""
    preds, truth = [], []
    for train, test in splits(len(y), protocol, seed):
        preds.append(fit_predict(train, test, seed))
        truth.append(y[test])
    return rmse(np.concatenate(preds), np.concatenate(truth))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT / "data" / "housing" / "housing.data")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--members", type=int, default=DEFAULTS["members"])
    ap.add_argument("--ours-only", action="store_true")
    args = ap.parse_args()
    data = load_housing(args.data)
    x, y = data.X, data.y
    hp = {**DEFAULTS, "members": args.members}
    contenders = {f"ours: ensemble of {hp['members']} MLPs (model/)":
                  lambda train, test, seed: ours(x, y, train, test, seed, hp)}
    def fitter(make):
        return lambda train, test, seed: make(seed).fit(x[train], y[train]).predict(x[test])

    if not args.ours_only:
        for name, make in sklearn_models().items():
            contenders[name] = fitter(make)
    for protocol, title in (("design", "DESIGN.md protocol: first 80% train, last 20% test"),
                            ("cv", "shuffled 5-fold cross-validation")):
        print(f"\n{title}; RMSE in $1000s over seeds {args.seeds}\n")
        print("| model | min | median | max | seconds per seed |")
        print("|---|---|---|---|---|")
        for name, fp in contenders.items():
            t0 = time.time()
            scores = [score(fp, x, y, protocol, s) for s in args.seeds]
            per = (time.time() - t0) / len(args.seeds)
            print(f"| {name} | {min(scores):.2f} | {statistics.median(scores):.2f} | "
                  f"{max(scores):.2f} | {per:.1f} |", flush=True)
    print(f"\ncommand: python {' '.join(sys.argv)}")


if __name__ == "__main__":
    main()
