import django.utils.timezone
from django.db import migrations, models
from django.db.models import F


def due_when_pending(apps, schema_editor):
    """Deliveries not yet delivered are due since they were made (enqueued again if still waiting);
    delivered ones and those given up (nine attempts, the first and eight retries) are due no more."""
    deliveries = apps.get_model("deployments", "WebhookDelivery").objects
    deliveries.filter(delivered_at__isnull=True, attempts__lt=9).update(due_at=F("created_at"))
    deliveries.exclude(delivered_at__isnull=True, attempts__lt=9).update(due_at=None)


class Migration(migrations.Migration):
    dependencies = [("deployments", "0013_global_environments_grant_only")]

    operations = [
        migrations.AddField(
            model_name="webhookdelivery",
            name="due_at",
            field=models.DateTimeField(blank=True, db_index=True, default=django.utils.timezone.now, null=True),
        ),
        migrations.RunPython(due_when_pending, migrations.RunPython.noop),
    ]
