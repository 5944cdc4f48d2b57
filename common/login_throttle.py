"""Too many wrong passwords in a row lock a login out for a while: the admin's and the staff
pages' login (they are one form, at /admin/login/).

A middleware, because Django's login view offers no hook before it checks a password. Failures
are counted per client address and per user name in Django's cache: the process's memory with
the default CACHES, so each server process counts its own; a shared cache (CACHES) counts them
together. LOGIN_MAX_FAILURES failures lock that address, and that user name, out until LOGIN_LOCKOUT_S has
passed since the first of them; a success clears the address's count.
"""

from __future__ import annotations

import hashlib
import logging

from django.conf import settings
from django.core.cache import cache
from django.http import HttpResponse

logger = logging.getLogger(__name__)

LOGIN_PATHS = ("/admin/login/",)


def _keys(request) -> list[str]:
    address = request.META.get("REMOTE_ADDR", "")
    username = request.POST.get("username", "").strip().lower()
    keys = [f"login-failures:addr:{address}"]
    if username:
        keys.append("login-failures:user:" + hashlib.sha256(username.encode()).hexdigest()[:32])
    return keys


class LoginThrottleMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        if request.method != "POST" or request.path not in LOGIN_PATHS:
            return self.get_response(request)
        keys = _keys(request)
        if any((cache.get(key) or 0) >= settings.LOGIN_MAX_FAILURES for key in keys):
            logger.warning("login refused: too many failures (%s)", request.META.get("REMOTE_ADDR"))
            response = HttpResponse(
                f"Too many failed logins. Try again in {settings.LOGIN_LOCKOUT_S // 60} minutes.",
                status=429, content_type="text/plain; charset=utf-8")
            response["Retry-After"] = str(settings.LOGIN_LOCKOUT_S)
            return response
        response = self.get_response(request)
        if response.status_code == 302:  # logged in: the form redirects
            cache.delete(keys[0])
        else:  # the form came back: a wrong name or password
            for key in keys:
                cache.add(key, 0, settings.LOGIN_LOCKOUT_S)
                try:
                    cache.incr(key)
                except ValueError:  # expired between add and incr
                    cache.set(key, 1, settings.LOGIN_LOCKOUT_S)
        return response
