"""The web API: FastAPI routes over the workflow service (see ``docs/api.md``)."""

from labelgate.api.app import create_app
from labelgate.api.deps import ApiSettings

__all__ = ["ApiSettings", "create_app"]
