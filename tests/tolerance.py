"""Comparisons for model outputs that were computed on another machine or BLAS kernel.

OpenBLAS picks a kernel per CPU (Haswell, SkylakeX, Sandybridge, ...); each sums a dot
product in its own order, so float32 results differ in the last one or two digits between
machines.
Values computed elsewhere (README outputs, committed figures) are compared with these
tolerances; values computed on this machine with one BLAS setting stay compared exactly.
"""

from __future__ import annotations

import math
import re
from typing import Any

# float32 has ~7 significant digits; kernels differ by a few ulp per dot product, which
# network depth turns into ~1e-6 relative. 1e-5 leaves room and still catches a wrong model.
RTOL = 1e-5
# Probabilities close to 0 differ relatively a lot but absolutely by far less than this.
ATOL = 1e-6

_NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


def close(actual: float, expected: float, rtol: float = RTOL, atol: float = ATOL) -> bool:
    """Whether two floats agree within the cross-machine tolerance."""
    return math.isclose(actual, expected, rel_tol=rtol, abs_tol=atol)


def json_mismatches(actual: Any, expected: Any, path: str = "$") -> list[str]:
    """Where two JSON values differ: floats within RTOL/ATOL, everything else exactly.

    Integers (labels, counts), strings and booleans are exact: no kernel changes them.
    """
    if isinstance(expected, float) or isinstance(actual, float):
        ok = type(actual) is type(expected) and close(actual, expected)
        return [] if ok else [f"{path}: {actual!r} != {expected!r}"]
    if isinstance(expected, dict) and isinstance(actual, dict):
        if actual.keys() != expected.keys():
            return [f"{path}: keys {sorted(actual)} != {sorted(expected)}"]
        return [m for k in expected for m in json_mismatches(actual[k], expected[k],
                                                             f"{path}.{k}")]
    if isinstance(expected, list) and isinstance(actual, list):
        if len(actual) != len(expected):
            return [f"{path}: {len(actual)} items != {len(expected)}"]
        return [m for i, (a, e) in enumerate(zip(actual, expected, strict=True))
                for m in json_mismatches(a, e, f"{path}[{i}]")]
    if type(actual) is not type(expected) or actual != expected:
        return [f"{path}: {actual!r} != {expected!r}"]
    return []


def assert_json_close(actual: Any, expected: Any) -> None:
    """Assert two JSON values are equal up to the cross-machine float tolerance."""
    problems = json_mismatches(actual, expected)
    assert not problems, f"outputs differ beyond rtol={RTOL}, atol={ATOL}:\n" + "\n".join(
        problems[:20])


def text_close(line: str, shown: str) -> bool:
    """Whether a printed line equals the shown text, its decimals within the tolerance.

    The text around the numbers must match exactly; numbers written without a decimal
    point or exponent (labels, counts) must match exactly too.
    """
    if _NUMBER.sub("#", line).strip() != _NUMBER.sub("#", shown).strip():
        return False
    pairs = zip(_NUMBER.findall(line), _NUMBER.findall(shown), strict=True)
    return all(close(float(a), float(e)) if re.search(r"[.eE]", e) else a == e
               for a, e in pairs)
