"""Reading a request's input with a serializer: the validated data, or the contract's 400."""

from __future__ import annotations


def validated(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
