"""The API's routers, one module per concept."""

from labelgate.api.routes.auth import router as auth_router
from labelgate.api.routes.jobs import router as jobs_router
from labelgate.api.routes.projects import router as projects_router
from labelgate.api.routes.review import router as review_router
from labelgate.api.routes.tasks import router as tasks_router

__all__ = ["auth_router", "jobs_router", "projects_router", "review_router", "tasks_router"]
