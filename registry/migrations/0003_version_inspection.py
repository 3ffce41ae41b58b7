from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0002_build_network_reason"),
    ]

    operations = [
        migrations.AddField(
            model_name="modelversion",
            name="inspection",
            field=models.CharField(blank=True, db_index=True, max_length=16),
        ),
        migrations.AddField(
            model_name="modelversion",
            name="inspection_note",
            field=models.CharField(blank=True, max_length=500),
        ),
    ]
