"""prefclean.yml -> a typed Project. The models live in prefclean/config/; this module keeps the import path
the rest of prefclean (and users' code) has always used."""

from .config import (  # noqa: F401
    PROJECT_FILE,
    SOURCE_TYPES,
    SOURCE_VIEW_TYPES,
    ExportConfig,
    JudgeConfig,
    Project,
    SourceConfig,
    load_project,
    parse_vars,
)
