"""Converters from other projects' checkpoints into model folders audiorag loads as they are."""

from audiorag.convert.clap import ConversionError, ConversionReport, convert_laion_clap

__all__ = ["ConversionError", "ConversionReport", "convert_laion_clap"]
