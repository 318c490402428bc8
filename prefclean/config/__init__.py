"""prefclean.yml as typed models (pydantic): every section forbids unknown keys, a judge's options depend on its
engine and an export's on its target, and any mistake is one line naming the key path.

    base.py       the forbid-extra base model and the one-line error messages
    sources.py    one class per source type          judges.py   one class per engine
    exports.py    one class per export target        executor.py `executor:`
    variables.py  `vars:` and `--vars`               project.py  the whole file -> Project
    plugins.py    the options of engines and targets that installed packages add
    schema.py     the JSON Schema (`prefclean schema`)
"""

from .base import PROJECT_FILE, ConfigModel
from .executor import ExecutorConfig
from .exports import EXPORT_CLASSES, ExportConfig, register_export_config
from .judges import JUDGE_CLASSES, JudgeConfig, register_judge_config
from .project import Project, file_model, load_project, validate_file
from .schema import MODELINE, SCHEMA_FILE, project_schema, schema_text
from .sources import SOURCE_CLASSES, SOURCE_TYPES, SOURCE_VIEW_TYPES, SourceConfig
from .variables import BUILTIN_VARS, RESERVED_VARS, parse_vars

__all__ = [
    "BUILTIN_VARS", "EXPORT_CLASSES", "JUDGE_CLASSES", "MODELINE", "PROJECT_FILE", "RESERVED_VARS", "SCHEMA_FILE",
    "SOURCE_CLASSES", "SOURCE_TYPES", "SOURCE_VIEW_TYPES", "ConfigModel", "ExecutorConfig", "ExportConfig",
    "JudgeConfig", "Project", "SourceConfig", "file_model", "load_project", "parse_vars", "project_schema",
    "register_export_config", "register_judge_config", "schema_text", "validate_file",
]
