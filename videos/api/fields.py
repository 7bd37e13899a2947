"""Serializer fields that take a value only in the type the schema gives it.

DRF's fields are lenient: a CharField takes the number 0 as "0", an IntegerField the
text "5", a BooleanField 0, 1 or "yes". A form's values are all text, so there they must
be; in a JSON body, a value of another type than the schema's is refused with a 400.
"""

from rest_framework import serializers


def _in_json(field):
    request = field.context.get("request")
    return request is not None and request.content_type.startswith("application/json")


class StrictCharField(serializers.CharField):
    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    def to_internal_value(self, data):
        if _in_json(self) and (isinstance(data, (bool, str))):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    def to_internal_value(self, data):
        if _in_json(self) and not isinstance(data, bool):
            self.fail("invalid", input=data)
        return super().to_internal_value(data)
