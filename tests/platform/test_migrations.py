"""Every model change ships with its migration, and the migrations of parallel work form one line."""

from io import StringIO

from django.core.management import call_command
from django.db.migrations.loader import MigrationLoader


def test_no_model_change_lacks_its_migration():
    out = StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)  # exits non-zero when one is missing
    assert "No changes detected" in out.getvalue()


def test_each_app_has_a_single_leaf_migration():
    conflicts = MigrationLoader(None, ignore_no_migrations=True).detect_conflicts()
    assert conflicts == {}, f"two migrations claim to be the latest: {conflicts}; renumber one after the other"
