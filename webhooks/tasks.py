"""The Celery task behind the celery dispatcher (WEBHOOK_QUEUE=celery): one attempt of one
delivery; a retry is sent again with its countdown by services.run_delivery."""

from __future__ import annotations

from celery import shared_task

from webhooks.services import run_delivery


@shared_task(name="webhooks.deliver", acks_late=True, reject_on_worker_lost=True)
def deliver(delivery_id: int) -> None:
    run_delivery(delivery_id)
