"""The README's operations procedures that can run here, run as written."""

import os
import subprocess

import pytest
from cryptography.fernet import Fernet
from django.db import connection

from deployments.models import ContainerRegistry
from tests.support import readme
from tests.support.factories import EnvironmentFactory
from tests.support.services import ROOT


@pytest.mark.django_db(transaction=True)
def test_the_key_rotation_block_reencrypts_every_stored_secret_with_the_new_key(settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.ENCRYPTION_KEYS = [old]
    registry = ContainerRegistry.objects.create(name="r", url="127.0.0.1:5999", username="ci", password="pw-1")
    environment = EnvironmentFactory(target="kubernetes", kube_token="token-2", kubeconfig="")
    settings.ENCRYPTION_KEYS = [new]
    with pytest.raises(ValueError, match="cannot be decrypted"):
        ContainerRegistry.objects.get(pk=registry.pk)  # the new key alone cannot read it yet
    block = readme.block(intro_starts_with="- **Encryption keys**")
    db = settings.DATABASES["default"]
    env = {
        "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{connection.settings_dict['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "SLIPWAY_SECRET_KEY": settings.SECRET_KEY,
        "SLIPWAY_ENCRYPTION_KEYS": f"{new},{old}",  # the new key first, the old one still readable
    }

    result = subprocess.run(["bash", "-c", block.text], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stderr
    # Now the new key alone reads everything: the old one can be removed.
    assert ContainerRegistry.objects.get(pk=registry.pk).password == "pw-1"
    environment.refresh_from_db()
    assert environment.kube_token == "token-2"
