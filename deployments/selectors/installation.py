"""Which Slipway installation this is: the label that keeps its objects apart from any other's."""

from django.conf import settings

from deployments.models import Installation


def installation_id() -> str:
    """SLIPWAY_INSTALLATION_ID if set, else the id stored in this database (made on first use).

    Not cached: a worker and the web process must agree even after the row is made, or (in tests) remade.
    """
    if settings.INSTALLATION_ID:
        return settings.INSTALLATION_ID
    installation, _ = Installation.objects.get_or_create(singleton=1)
    return installation.installation_id
