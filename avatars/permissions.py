from rest_framework.permissions import BasePermission


class IsApiClient(BasePermission):
    """An API key, or a logged-in staff user (the browsable API and the staff pages)."""

    message = "Staff access is required."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user is not None and user.is_authenticated and (request.auth is not None or user.is_staff))
