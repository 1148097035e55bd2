"""Validate a workflow config once, before any job starts, and fill its defaults.

The JSON schema in `config/schema.yaml` is the single source of truth for keys and defaults; this
module only runs Snakemake's own validator over it and rewrites its error into one line that names
the offending key, because jsonschema's default message buries the path in a schema dump.
Checks that a schema cannot express (ids derived from several keys) live in `plan/variants.py`.
"""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "config" / "schema.yaml"


class ConfigError(ValueError):
    """A config problem, reported before any job runs; the message names the key."""


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    if error.validator == "additionalProperties":
        # The unknown key is in the message, not in the path: name it explicitly.
        known = set(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - known) if isinstance(error.instance, dict) else []
        parts += extra[:1]
    return ".".join(parts) or "<top level>"


def _describe(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        known = sorted(error.schema.get("properties", {}))
        return f"unknown key (known keys here: {', '.join(known)})"
    if error.validator == "minItems" and error.validator_value == 1:
        return "must not be empty"
    if error.validator == "uniqueItems":
        return f"has duplicate entries: {error.instance!r}"
    return error.message


def validate_config(config: dict, schema_path: Path | str = SCHEMA_PATH) -> dict:
    """Return a validated copy of `config` with every default filled in.

    Raises ConfigError whose message starts with the dotted key that is wrong.
    """
    from snakemake.utils import validate  # Snakemake's validator fills defaults from the schema

    checked = copy.deepcopy(dict(config))
    # Snakemake's validate flattens jsonschema's error into one long string with the whole
    # schema in it; find the error ourselves first so the message can name the key.
    schema = yaml.safe_load(Path(schema_path).read_text())
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(schema).iter_errors(checked)
    )
    if error is not None:
        raise ConfigError(f"config key '{_key_path(error)}': {_describe(error)}")
    validate(checked, str(schema_path))
    return checked
