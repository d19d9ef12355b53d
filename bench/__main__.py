"""Run benchmarks: `python -m bench` (all) or one: `python -m bench dispatch [--n 2000]`, `python -m bench consults`, `python -m bench webhooks`."""

from __future__ import annotations

import sys


def _dispatch(argv):
    from bench import dispatch

    return dispatch.main(argv)


def _consults(argv):
    from bench import consults

    return consults.main(argv)


def _reconcile(argv):
    from bench import reconcile

    return reconcile.main(argv)


def _faults(argv):
    from bench import faults

    return faults.main(argv)


def _dosing(argv):
    from bench import dosing

    return dosing.main(argv)


def _webhooks(argv):
    from bench import webhooks

    return webhooks.main(argv)


def _load(argv):
    from bench import load

    return load.main(argv)


def _restart(argv):
    from bench import restart

    return restart.main(argv)


def _compare(argv):
    from bench import load

    return load.compare(argv)


BENCHMARKS = {"dispatch": _dispatch, "consults": _consults, "reconcile": _reconcile, "faults": _faults,
              "load": _load, "compare": _compare, "dosing": _dosing,
              "webhooks": _webhooks, "restart": _restart}
# Run by `python -m bench` with no name: everything except tools that need arguments.
_NOT_IN_ALL = {"compare"}


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        print("benchmarks:", ", ".join(BENCHMARKS))
        return 0
    if argv and not argv[0].startswith("-"):
        name, rest = argv[0], argv[1:]
        if name not in BENCHMARKS:
            print(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
            return 2
        return BENCHMARKS[name](rest) or 0
    status = 0
    for name, run in BENCHMARKS.items():
        if name in _NOT_IN_ALL:
            continue
        status = run(argv) or status
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
