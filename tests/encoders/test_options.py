"""Encoder options are defined once: the config section and the ``eval`` flags derive from them."""

from __future__ import annotations

import argparse

from recallwatch.commands.eval import add_parser
from recallwatch.config import EncoderConfig
from recallwatch.encoders import EncoderOptions


def eval_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    return parser


def test_the_config_section_is_the_options_plus_the_spec() -> None:
    assert set(EncoderConfig.model_fields) == {"spec", *EncoderOptions.model_fields}
    config = EncoderConfig.model_validate({"spec": "st", "batch_size": 8})
    assert config.options() == EncoderOptions(batch_size=8)
    assert EncoderConfig().options() == EncoderOptions()


def test_every_option_is_an_eval_flag_with_its_default() -> None:
    args = eval_parser().parse_args(["eval", "--heldout", "h", "--checkpoint", "c"])
    assert {
        f: getattr(args, f) for f in EncoderOptions.model_fields
    } == EncoderOptions().model_dump()
    args = eval_parser().parse_args(
        ["eval", "--heldout", "h", "--checkpoint", "c", "--batch-size", "4", "--precision", "bf16"]
    )
    assert args.batch_size == 4 and args.precision == "bf16"
