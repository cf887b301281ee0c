"""``--server-option KEY=VALUE``, shared by the typing and soak benchmarks."""

from __future__ import annotations

import argparse

import pytest

from vqlsp.bench import server_options


def test_values_are_json_where_they_are_json_else_strings():
    parser = argparse.ArgumentParser()
    server_options.add_argument(parser)
    args = parser.parse_args(["--server-option", "maxFileLength=20000000", "--server-option", "positionPolicy=exact",
                              "--server-option", 'labels={"spam": {"severity": "off"}}'])
    assert server_options.parse(args.server_option) == {
        "maxFileLength": 20000000, "positionPolicy": "exact", "labels": {"spam": {"severity": "off"}}}


@pytest.mark.parametrize("item", ["maxFileLength", "=3"])
def test_an_item_without_a_key_and_value_is_refused(item):
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        server_options.parse([item])
