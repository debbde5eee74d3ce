"""Command line of the trainer: ``python -m training {housing,mnist,evaluate,export} ...``.

Exit codes: 0 success, 2 bad arguments or bad input files (data, artifact), 1 other failures.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import traceback
from pathlib import Path

from model import ArtifactError, InputError

from .argtypes import float_in as _float_in
from .argtypes import non_negative_int as _non_negative_int
from .argtypes import positive_int as _positive_int
from .errors import DataError, ExportError, MissingExtraError
from .run import TrainOptions, command_line

EXAMPLES = """examples:
  python -m training housing --data data/housing/housing.data --out artifacts
  python -m training mnist --data data/mnist-train-10k --extra-data data/typeset-digits \
      --out artifacts
  python -m training mnist --data ~/mnist --arch mlp --no-augment --epochs 10
  python -m training evaluate --model artifacts/mnist/1 --data ~/mnist
  python -m training export --format onnx --model artifacts/housing/1 --out housing.onnx
  python -m training export --format triton --model artifacts/mnist/1 --out model-repository
"""


def _add_training_options(p: argparse.ArgumentParser, data_help: str) -> None:
    p.add_argument("--data", type=Path, required=True, help=data_help)
    p.add_argument("--out", type=Path, default=Path("artifacts"),
                   help="artifacts root; the model is written to OUT/<name>/<next version>/ "
                        "(default: artifacts)")
    p.add_argument("--seed", type=int, default=0, help="seed of splits, initialisation, "
                   "shuffling and augmentation (default: 0)")
    p.add_argument("--epochs", type=_positive_int, help="maximum number of epochs")
    p.add_argument("--batch-size", type=_positive_int, help="mini-batch size")
    p.add_argument("--optimizer", choices=["sgd", "momentum", "rmsprop", "adam"])
    p.add_argument("--lr", type=_float_in(0, 10, low_open=True), help="learning rate")
    p.add_argument("--weight-decay", type=_float_in(0, 1, low_open=False),
                   help="L2 weight decay on kernels")
    p.add_argument("--patience", type=_non_negative_int,
                   help="stop after this many epochs without validation improvement and keep "
                        "the best epoch (0: never stop early, keep the last epoch)")
    p.add_argument("--threads", type=_positive_int,
                   help="threads each training step runs on (default: every usable CPU for "
                        "convolutional networks, 1 for dense ones); a run is reproducible for "
                        "a given seed and thread count")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bars (default: only on a terminal)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training", description="Train the housing regressor and the MNIST "
        "classifier, and evaluate saved models.", epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    housing = sub.add_parser(
        "housing", help="train the Boston-housing price regressor",
        description="Train an ensemble of small MLPs on quantile-transformed features with a "
        "log-price target. Protocol: the first 80% of rows (file order) train, a seeded 15% "
        "slice of them validates, the last 20% is the test set. Prints the metrics as JSON.")
    _add_training_options(housing, "housing.data (14 numbers a line) or a CSV whose header "
                                   "names the 13 features and MEDV")
    housing.add_argument("--members", type=_positive_int,
                         help="networks in the ensemble (default: 8)")

    mnist = sub.add_parser(
        "mnist", help="train the MNIST digit classifier",
        description="Train a digit classifier on IDX files. With t10k-* files in the folder "
        "they are the test set; otherwise a seeded 10% slice of the training files is. A "
        "seeded 5% slice of the rest validates. --extra-data folders add digits to the "
        "training split only. Prints the metrics as JSON.")
    _add_training_options(mnist, "folder with train-images-idx3-ubyte[.gz] and "
                                 "train-labels-idx1-ubyte[.gz] (optionally the t10k-* pair)")
    mnist.add_argument("--arch", choices=["mlp", "cnn"], default="cnn",
                       help="cnn (default): 3 conv blocks; mlp: 784-512-10")
    mnist.add_argument("--augment", action=argparse.BooleanOptionalAction, default=True,
                       help="random shifts, rotations, scaling and elastic distortion of "
                            "training digits (default: on)")
    mnist.add_argument("--extra-data", type=Path, action="append", default=[], metavar="DIR",
                       help="a folder with a train-images/train-labels IDX pair (no t10k-*) "
                            "whose digits are added to the training split only, e.g. "
                            "data/typeset-digits; repeatable. The validation split (and so "
                            "early stopping with --patience) and the test set come from --data "
                            "alone, as without it")

    ev = sub.add_parser(
        "evaluate", help="score a saved model on labelled data",
        description="Print one JSON object of metrics of a saved model on the whole of the "
        "given data: rmse, mae, n for housing; accuracy, loss, n, confusion for mnist "
        "(confusion rows are true labels).")
    ev.add_argument("--model", type=Path, required=True,
                    help="artifact folder, e.g. artifacts/mnist/1")
    ev.add_argument("--data", type=Path, required=True,
                    help="housing file, or folder of IDX files (its t10k pair if present, "
                         "else its train pair)")

    ex = sub.add_parser(
        "export", help="export a saved model to ONNX or a Triton model repository",
        description=textwrap.fill(
            "Write a saved model as one self-contained ONNX graph (opset 17) taking "
        "the service's raw inputs (housing: features [n, 13] float32; digits: images "
        "[n, 28, 28] float32 pixels 0-255) with the preprocessing inside, and giving its V2 "
        "outputs (MEDV; probabilities and label). Metadata: name, version, weights and "
        "manifest sha256, metrics. Before writing, the graph runs in onnxruntime beside the "
        "model and is refused if they disagree. The output is written atomically. Needs the "
        "export extra: pip install '.[export]'. Prints a JSON summary.", 79),
        epilog="examples:\n  python -m training export --format onnx --model "
        "artifacts/housing/1 --out housing.onnx\n  python -m training export --format triton "
        "--model artifacts/mnist/1 --out model-repository",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ex.add_argument("--format", required=True, choices=["onnx", "triton"],
                    help="onnx: one .onnx file; triton: a model repository, "
                         "OUT/<name>/config.pbtxt and OUT/<name>/<version>/model.onnx")
    ex.add_argument("--model", type=Path, required=True,
                    help="artifact folder, e.g. artifacts/housing/1")
    ex.add_argument("--out", type=Path, required=True,
                    help="the .onnx file (onnx) or the repository folder (triton) to write")
    ex.add_argument("--max-batch-size", type=_positive_int, default=1024,
                    help="triton: the largest batch Triton may form (default: 1024, the "
                         "service's SERVICE_MAX_INSTANCES default)")
    ex.add_argument("--verify", action=argparse.BooleanOptionalAction, default=True,
                    help="compare the graph with the model on seeded inputs before writing "
                         "(default: on)")
    return parser


def run(args: argparse.Namespace, argv: list[str]) -> dict:
    """Carry out the parsed command and return what to print."""
    if args.command == "evaluate":
        from .evaluate import evaluate

        return evaluate(args.model, args.data)
    if args.command == "export":
        from .export import export

        return export(args.model, args.format, args.out, max_batch_size=args.max_batch_size,
                      verify=args.verify)
    options = TrainOptions(data=args.data, out=args.out, seed=args.seed, epochs=args.epochs,
                           batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
                           weight_decay=args.weight_decay, patience=args.patience,
                           progress=args.progress, threads=args.threads,
                           command=command_line(argv))
    if args.command == "housing":
        from .housing import train

        result = train(options, members=args.members)
    else:
        from .mnist import train

        result = train(options, arch=args.arch, augment=args.augment,
                       extra_data=args.extra_data)
    summary = {name: {k: v for k, v in m.items() if k != "confusion"}
               for name, m in result.metrics.items()}
    return {"artifact": str(result.path), **summary}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    try:
        print(json.dumps(run(args, argv), indent=2))
    except (DataError, ArtifactError, InputError, ExportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except MissingExtraError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: nothing was saved", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug or the environment: say what, keep the details
        traceback.print_exc()
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
