"""Data files of named presets (``transformers.json``: transformer language models); shipped as
package data so that an installed wheel finds them. Read by :mod:`workloads.transformer.presets`."""
