"""``--server-option KEY=VALUE``: any server option (its camelCase name) for a benchmark's server.

The benchmarks start the real server with initialization options; a few have flags of their
own, and this one flag sets any other (``maxFileLength`` for a 10 MB document, say).
"""

from __future__ import annotations

import argparse
import json


def add_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server-option", action="append", default=[], metavar="KEY=VALUE",
                        help="any other server option (camelCase; VALUE is JSON, else a string), "
                             "e.g. sectionTokens=1024")


def parse(items: list[str]) -> dict[str, object]:
    """``KEY=VALUE`` items as options (VALUE read as JSON where it is JSON, else a string)."""
    options = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"vqlsp bench: --server-option takes KEY=VALUE, not {item!r}")
        try:
            options[key] = json.loads(raw)
        except json.JSONDecodeError:
            options[key] = raw
    return options
