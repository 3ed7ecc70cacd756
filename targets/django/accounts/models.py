from django.db import models


class Pending(models.Model):
    """A signup waiting for its emailed code."""

    email = models.EmailField()
    code = models.CharField(max_length=4)
    created = models.DateTimeField(auto_now_add=True)
    attempts = models.IntegerField(default=0)
