"""Reading a request's input with a serializer: the validated data, or the contract's 400."""

from __future__ import annotations

from rest_framework import serializers

# The largest id or count a database integer column holds: larger input is refused with 400,
# never sent to the database (where it would overflow into a 500).
MAX_DB_INT = 2**63 - 1
MAX_OFFSET = 2**31 - 1


def validated(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class StrictBooleanField(serializers.BooleanField):
    """The contract's booleans: true/false/True/False/1/0 (httpx sends Python's "True"/"False")."""

    TRUE_STRINGS = {"true", "True", "TRUE", "1"}
    FALSE_STRINGS = {"false", "False", "FALSE", "0"}
    default_error_messages = {"invalid": "Must be true or false (also accepted: True, False, 1, 0); got {input!r}."}

    def to_internal_value(self, data):
        if isinstance(data, bool):
            return data
        if isinstance(data, int) and data in (0, 1):
            return bool(data)
        if isinstance(data, str) and data.strip() in self.TRUE_STRINGS | self.FALSE_STRINGS:
            return data.strip() in self.TRUE_STRINGS
        self.fail("invalid", input=data)
