from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = []

    operations = [
        migrations.CreateModel(
            name="Pending",
            fields=[
                ("id", models.AutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("email", models.EmailField(max_length=254)),
                ("code", models.CharField(max_length=4)),
                ("created", models.DateTimeField(auto_now_add=True)),
                ("attempts", models.IntegerField(default=0)),
            ],
        ),
    ]
