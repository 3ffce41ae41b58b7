from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="registeredmodel",
            name="build_network_reason",
            field=models.CharField(blank=True, max_length=300),
        ),
    ]
