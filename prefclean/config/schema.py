"""The JSON Schema of prefclean.yml (`prefclean schema`), for editors: completion, hover text, red squiggles.

A project points its editor at it with a first line `# yaml-language-server: $schema=prefclean.schema.json`
(VS Code's YAML extension reads it); `prefclean init` writes both, and `prefclean schema > prefclean.schema.json`
refreshes the file after an upgrade or a plugin adds an engine.
"""

from __future__ import annotations

import json
from typing import Any

from .project import file_model
from .variables import BUILTIN_VARS

SCHEMA_FILE = "prefclean.schema.json"
MODELINE = f"# yaml-language-server: $schema={SCHEMA_FILE}"


def project_schema() -> dict[str, Any]:
    schema = file_model().model_json_schema()
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "prefclean.yml",
              **{k: v for k, v in schema.items() if k != "title"}}
    properties = schema["properties"]
    # `type` may be left out of a source (inferred from `rows` or the extension), so a file source matches the
    # parquet, jsonl and csv branches alike: anyOf, and no discriminator that would demand `type`.
    union = properties["sources"]["additionalProperties"]
    union["anyOf"] = union.pop("oneOf")
    union.pop("discriminator", None)
    properties["vars"]["properties"] = {name: {"description": f"built-in: {what}"} for name, what in BUILTIN_VARS.items()}
    # What the loader also accepts: `executor: ray`, and a section left empty (`judges:` with nothing under it).
    executor = properties["executor"]
    executor.pop("default", None)  # every setting's default is in ExecutorConfig's own schema
    properties["executor"] = {"anyOf": [{"enum": ["local", "ray"]}, {"$ref": executor.pop("$ref")}], **executor}
    for key in ("vars", "sources", "judges", "exports"):
        properties[key]["type"] = ["object", "null"]
    return schema


def schema_text() -> str:
    return json.dumps(project_schema(), indent=2) + "\n"
