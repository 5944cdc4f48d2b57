"""The Celery application, for AVATAR_JOB_QUEUE=celery: `celery -A tutorplatform worker`."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tutorplatform.settings")

app = Celery("tutorplatform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["avatars", "webhooks"])
