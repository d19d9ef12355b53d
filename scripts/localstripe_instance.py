"""Run localstripe with its state in a file we choose, not the /tmp pickle every localstripe shares.

localstripe (1.15) always loads and saves ``/tmp/localstripe.pickle``; its command line can only
skip the load (``--from-scratch``). ``make run`` keeps the demo's Stripe state beside the demo
database instead: ``python scripts/localstripe_instance.py STATE_FILE [--port N] [--from-scratch]``.
"""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path


def use_state_file(path: Path) -> None:
    from localstripe import resources

    store_class = getattr(resources, "Store", None)
    if store_class is None or not hasattr(store_class, "dump_to_disk") or not hasattr(store_class, "try_load_from_disk"):
        raise SystemExit("this localstripe keeps its state differently; update scripts/localstripe_instance.py")

    def try_load_from_disk(self):
        try:
            with path.open("rb") as fh:
                old = pickle.load(fh)
        except FileNotFoundError:
            return
        self.clear()
        self.update(old)

    def dump_to_disk(self):
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("wb") as fh:
            pickle.dump(dict(self), fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)

    store_class.try_load_from_disk = try_load_from_disk
    store_class.dump_to_disk = dump_to_disk


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1].startswith("-"):
        raise SystemExit(__doc__)
    path = Path(argv[1]).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    use_state_file(path)
    from localstripe import server

    sys.argv = [argv[0], *argv[2:]]
    server.start()


if __name__ == "__main__":
    main(sys.argv)
