import secrets

from django.db import models


def new_installation_id() -> str:
    return f"i{secrets.token_hex(6)}"


class Installation(models.Model):
    """This Slipway installation's identity, one row per database.

    Every object a target creates is labelled with it, so two installations (or two test runs) that share
    a Docker host or a namespace never find, replace or remove each other's objects. SLIPWAY_INSTALLATION_ID
    overrides it, e.g. for a database restored into another installation.
    """

    singleton = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    installation_id = models.CharField(max_length=63, default=new_installation_id)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.installation_id
