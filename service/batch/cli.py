"""Command line of the batch scorer: ``python -m service.batch --model NAME --input FILE
--output FILE [--version V] [--url URL] [...]`` (see ``--help``)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from model.errors import DataError

from ..config import Settings
from .errors import BatchError, UsageError
from .inputs import FORMATS, detect_format, open_source
from .outputs import error_report_path, open_writer, output_format
from .scoring import LocalModel, ScoringModel, Summary, run
from .tables import PROBABILITY_LAYOUTS, listed_probabilities

#: Input values per chunk by default: small enough that a CNN's activations stay in cache
#: (measured fastest), large enough that per-chunk overhead vanishes for tabular rows.
CHUNK_VALUES = 1 << 16
MAX_CHUNK = 4096
REMOTE_WORKERS = 4

DESCRIPTION = """\
Score a file of instances with a model, locally (the artifact, loaded and checked by the
same code as the service) or through a running service (--url). Rows are validated
exactly as the service validates instances; rows that fail go to an error report and
the rest are scored."""

EPILOG = """\
input formats (by extension, or --format):
  .csv            a header line, then one record a line. housing: the 13 feature names
                  in any order, optionally MEDV (true value: RMSE/MAE are printed).
                  mnist: 784 pixel columns in row-major order (or named pixel0..pixel783
                  or 1x1..28x28, then in any order), optionally 'label' (accuracy printed).
  .jsonl .ndjson  one instance a line, as in the V1 API's "instances": housing, an object
                  of the 13 features or a list of 13 numbers; mnist, 784 numbers or 28
                  lists of 28. With a true value: {"instance": ..., "label": ...}, or a
                  housing object with a "MEDV" key.
  .parquet        columns named as in CSV (housing: the 13 features, optionally MEDV;
                  mnist: 784 pixel columns or one list column of 784 numbers, optionally
                  'label'), read a row group's batches at a time. Nulls and text that is
                  not a number are bad rows.
  IDX             images, raw or gzip (e.g. t10k-images-idx3-ubyte.gz); labels are read
                  from --labels or the sibling ...-labels-idx1-ubyte[.gz] file.
  folder, .zip    picture files (PNG, JPEG, GIF, BMP, WebP) for mnist, prepared as the
                  service prepares them; rows in sorted path order. Labels (accuracy
                  printed) from labels.csv inside (or NAME.csv beside it, or --labels):
                  columns file,label; or from the folder a file is in (digits/7/a.png).
  CSV and JSON Lines may be gzip-compressed; blank lines are skipped.

output (by the extension of --output, written atomically; rows in input order):
  .csv            housing: row,prediction   mnist: row,label,p0,...,p9
  .jsonl          {"row": 0, "prediction": 23.4} / {"row": 0, "label": 7, "probabilities": [...]}
  .parquet        the CSV's columns: row (int64), prediction (float32) / row, label
                  (int64), p0..p9 (float32); with --probabilities list: row, label,
                  probabilities (list<float32>)
  row is the record number counted from 0 in file order (blank lines and the CSV header
  are not records; IDX: the image index). Rows that cannot be scored are listed in
  OUTPUT.errors.jsonl as {"row", "line" (text formats, counted from 1), "error",
  "details" (the service's per-field messages)}; a stale report is removed when all
  rows are scored. Metrics (if the input has true values) are printed to stdout as JSON,
  a summary to stderr.
  --engine spark: the output is a Parquet or CSV dataset folder (part files in input
  order), the error report a folder of JSON Lines without "line"; see docs/SPARK.md.

exit codes:
  0  every row was scored
  2  bad arguments or an unusable input file (nothing written), or some rows could not
     be scored (the output holds the others; see the error report)
  1  other failures, e.g. the service is unreachable after the retries (nothing written)
  130, 143  interrupted (Ctrl-C, SIGTERM): nothing written

examples:
  python -m service.batch --model mnist --input t10k-images-idx3-ubyte.gz --output digits.csv
  python -m service.batch --model housing --input houses.csv --output prices.jsonl
  python -m service.batch --model housing --version 2 --input rows.jsonl --output out.csv \\
      --url http://localhost:8000
  python -m service.batch --engine spark --master 'local[4]' --model housing \\
      --input hdfs:///data/houses/ --output hdfs:///scores/prices.parquet --id-column house_id
"""


def _number(convert: Callable[[str], Any], what: str, low: float, high: float | None = None,
            low_open: bool = False) -> Callable[[str], Any]:
    """An argparse type: ``convert(text)`` within [low, high] ((low, high] if low_open)."""
    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if value < low or (low_open and value == low) or (high is not None and value > high):
            bounds = f"{'more than' if low_open else 'at least'} {low:g}" + (
                f" and at most {high:g}" if high is not None else "")
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {text}")
        return value
    return parse


_count = _number(int, "a whole number", 1)


def build_parser() -> argparse.ArgumentParser:
    env = Settings.ENV["artifacts_dir"]
    p = argparse.ArgumentParser(prog="python -m service.batch", description=DESCRIPTION,
                                epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, metavar="NAME",
                   help="model name, e.g. housing or mnist")
    p.add_argument("--version", metavar="V",
                   help="model version (default: the latest that loads; remote: the version "
                        "the service serves at the start)")
    p.add_argument("--input", required=True, metavar="FILE",
                   help="CSV, JSON Lines, IDX or Parquet file (Spark: any path or URI it "
                        "reads, e.g. a folder of Parquet files or s3a://bucket/table)")
    p.add_argument("--output", required=True, metavar="FILE",
                   help="output file: .csv, .jsonl/.ndjson or .parquet (Spark: a dataset "
                        "folder or URI ending in .parquet or .csv)")
    p.add_argument("--url", help="score through the service at URL (e.g. "
                                 "http://localhost:8000) instead of locally")
    p.add_argument("--artifacts", type=Path, metavar="DIR",
                   default=Path(os.environ.get(env, "").strip() or "artifacts"),
                   help=f"local mode: the artifacts folder (default: ${env} or artifacts)")
    p.add_argument("--format", choices=FORMATS,
                   help="input format, when the file name does not tell")
    p.add_argument("--labels", type=Path, metavar="FILE",
                   help="IDX labels file (default: the sibling ...-labels-idx1-ubyte[.gz]), or "
                        "a file,label CSV for pictures")
    p.add_argument("--chunk-size", type=_count, metavar="ROWS",
                   help="rows read, scored and (remote) sent at a time; results do not "
                        "depend on it, memory grows with it (default: about 64K values: "
                        "83 MNIST images, 4096 housing rows)")
    p.add_argument("--workers", type=_count, metavar="N",
                   help="chunks scored at once: threads locally (default: one per core), "
                        f"parallel requests remotely (default: {REMOTE_WORKERS})")
    p.add_argument("--timeout", type=_number(float, "a number of seconds", 0, 3600, True),
                   default=30.0, metavar="SECONDS",
                   help="remote: seconds to wait for each answer (default: 30)")
    p.add_argument("--retries", type=_number(int, "a whole number", 0, 100), default=5,
                   metavar="N",
                   help="remote: retries of a request after a connection error, a timeout "
                        "or a 429/502/503/504 answer, with exponential backoff (default: 5)")
    p.add_argument("--probabilities", choices=PROBABILITY_LAYOUTS, default="columns",
                   help="a classifier's probabilities in Parquet output (both engines): one "
                        "float32 column a class, p0..p9 (default), or one list<float32> "
                        "column 'probabilities' (JSON Lines always has a list; CSV the "
                        "columns)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="a progress bar on stderr (default: only on a terminal)")
    spark = p.add_argument_group("Spark engine")
    spark.add_argument("--engine", choices=("local", "spark"), default="local",
                       help="local: this process (default); spark: a Spark job (pyspark, "
                            "Java 17+), see docs/SPARK.md")
    spark.add_argument("--master", metavar="URL",
                       help="Spark master, e.g. local[4], spark://host:7077, yarn (default: "
                            "spark-submit's --master, else local[*])")
    spark.add_argument("--id-column", metavar="COL",
                       help="Spark: an input column carried to the output and the error "
                            "dataset as each row's key (default: row, the record number)")
    spark.add_argument("--io", choices=("auto", "workers", "spark"), default="auto",
                       help="Spark: who reads the input and writes the outputs. workers: "
                            "each Python worker reads its row groups and writes its part "
                            "files itself (Parquet input; local or file: paths every "
                            "executor sees; fastest, no row conversion in the JVM). spark: "
                            "Spark's readers and writers (any format and file system Spark "
                            "is configured for). auto (default): workers when they can")
    return p


def score(args: argparse.Namespace) -> Summary:
    """Check the arguments, load the model, score the input; raise on failure."""
    if args.engine == "spark":
        from .spark.job import score_on_spark  # pyspark: only when asked for

        local = _local_model(args)
        summary = score_on_spark(args, local, _chunk_size(args, local))
        _report(args, local.version, summary, f"on Spark ({summary.notes[0]})")
        return summary
    source_path, output = Path(args.input), Path(args.output)
    if not source_path.is_file() and not (source_path.is_dir() and args.format in (
            None, "images")):
        raise DataError(source_path, "no such file" if not source_path.exists()
                        else "not a file")
    out_format = output_format(output)
    if out_format is None:
        raise UsageError(f"--output {output}: the name must end in .csv, .jsonl, .ndjson or "
                         ".parquet")
    if not output.parent.is_dir():
        raise UsageError(f"--output {output}: folder {output.parent} does not exist")
    if output.resolve() == source_path.resolve():
        raise UsageError(f"--output {output} is the input file")
    if args.labels is not None and not args.labels.is_file():
        raise DataError(args.labels, "no such file")
    if args.id_column is not None:
        raise UsageError("--id-column is for --engine spark; the local engine numbers rows")
    if args.io != "auto":
        raise UsageError("--io is for --engine spark; the local engine reads and writes itself")
    fmt = args.format or detect_format(source_path)
    workers = args.workers or (REMOTE_WORKERS if args.url else min(os.cpu_count() or 1, 8))
    model: ScoringModel
    if args.url:
        from .remote import RemoteModel  # requests: only when needed

        model = RemoteModel(args.url, args.model, args.version, timeout=args.timeout,
                            retries=args.retries, workers=workers,
                            max_rows=args.chunk_size or MAX_CHUNK)
    else:
        model = _local_model(args)
    # One BLAS thread, as in every service worker: outputs are then bitwise the service's
    # (OpenBLAS may split a convolution differently between threads). Parallelism comes
    # from scoring chunks in threads.
    chunk_size = _chunk_size(args, model)
    listed = listed_probabilities(args.probabilities, model.interface, out_format)
    with threadpool_limits(1), open_source(source_path, fmt, model.interface,
                                           args.labels) as source:
        writer = open_writer(output, out_format, model.interface, listed)
        bar = tqdm(total=source.total, unit=source.unit, unit_scale=True, file=sys.stderr,
                   desc=source_path.name, disable=None if args.progress is None
                   else not args.progress, leave=False)
        try:
            summary = run(source, model, writer, chunk_size=chunk_size,
                          workers=workers, progress=bar.update)
            writer.commit()
        except BaseException:
            writer.discard()
            raise
        finally:
            bar.close()
    summary.errors_path = error_report_path(output) if summary.failed else None
    _report(args, model.version, summary, f"through {args.url}" if args.url else "locally")
    return summary


def _local_model(args: argparse.Namespace) -> LocalModel:
    """The model from --artifacts, with a warning for each newer version that did not load."""
    local = LocalModel.find(args.artifacts, args.model, args.version)
    for note in local.skipped:
        print(f"warning: {args.model} {note}; scoring with version {local.version}",
              file=sys.stderr)
    return local


def _chunk_size(args: argparse.Namespace, model: ScoringModel) -> int:
    """--chunk-size, or about CHUNK_VALUES input values a chunk."""
    return args.chunk_size or max(16, min(MAX_CHUNK, CHUNK_VALUES // model.interface.input_size))


def _report(args: argparse.Namespace, version: int, summary: Summary, where: str) -> None:
    """The summary line on stderr, the metrics on stdout."""
    rate = summary.scored / summary.seconds if summary.seconds > 0 else 0.0
    print(f"scored {summary.scored} of {summary.rows} rows with {args.model} version "
          f"{version} {where} in {summary.seconds:.2f} s ({rate:,.0f} rows/s); "
          f"wrote {args.output}", file=sys.stderr)
    if summary.metrics is not None:
        if summary.unlabelled:
            print(f"note: {summary.unlabelled} scored rows have no usable true value; the "
                  f"metrics cover the other {summary.metrics['n']}", file=sys.stderr)
        print(orjson.dumps(summary.metrics).decode())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    caught: dict[str, Any] = {}

    def on_signal(signum: int, frame: Any) -> None:
        caught["signal"] = signum
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_signal)
    try:
        summary = score(args)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BatchError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted: no output written", file=sys.stderr)
        return 128 + caught.get("signal", signal.SIGINT)
    except OSError as exc:  # the output folder or disk, mostly: say what, no traceback
        print(f"error: {exc.filename or ''}{': ' if exc.filename else ''}"
              f"{exc.strerror or exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug: keep the details
        traceback.print_exc()
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    if summary.failed:
        print(f"error: {summary.failed} of {summary.rows} rows could not be scored; they are "
              f"listed in {summary.errors_path}", file=sys.stderr)
        return 2
    return 0
