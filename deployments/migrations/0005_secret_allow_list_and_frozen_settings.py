from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("deployments", "0004_rollout_cancelled"),
    ]

    operations = [
        migrations.AddField(
            model_name="build",
            name="network_reason",
            field=models.CharField(blank=True, max_length=300),
        ),
        migrations.AddField(
            model_name="environment",
            name="allowed_secret_refs",
            field=models.JSONField(
                blank=True,
                default=list,
                help_text="Kubernetes Secrets a model may read here (secret_refs); set by the environment's admins.",
            ),
        ),
        migrations.AddField(
            model_name="promotionrequest",
            name="deployment_settings",
            field=models.JSONField(blank=True, default=dict),
        ),
    ]
