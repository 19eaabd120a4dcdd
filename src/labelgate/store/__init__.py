"""Program store: SQLAlchemy 2 models, set-based repositories, Alembic migrations."""

from labelgate.store.db import DEFAULT_URL, ENV_VAR, Database, resolve_url, upgrade

__all__ = ["DEFAULT_URL", "ENV_VAR", "Database", "resolve_url", "upgrade"]
