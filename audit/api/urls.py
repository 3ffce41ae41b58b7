"""The audit trail's API routes; config/api_urls.py puts every app's routes under /api/v1/."""

from audit.api.views import AuditEventViewSet

routes = [("audit", AuditEventViewSet, "audit-event")]
