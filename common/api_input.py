"""Reading a request's input with a serializer: the validated data, or the contract's 400."""

from __future__ import annotations

# The largest id or count a database integer column holds: larger input is refused with 400,
# never sent to the database (where it would overflow into a 500).
MAX_DB_INT = 2**63 - 1
MAX_OFFSET = 2**31 - 1


def validated(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
