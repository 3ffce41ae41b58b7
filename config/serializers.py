"""What every API serializer of ours may share. Kept apart from config.api, which the apps' serializers
cannot import while DRF reads its settings (config.api is named there)."""

from collections.abc import Mapping

from rest_framework import exceptions


class RefusesIgnoredFields:
    """A serializer mixin: a key it would ignore (read-only, unknown) is a 400 naming it, rather than a
    200 that silently changed less than was asked."""

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            writable = sorted(name for name, field in self.fields.items() if not field.read_only)
            ignored = sorted(set(data) - set(writable))
            if ignored:
                reason = f"This field cannot be changed here (what can: {', '.join(writable)})."
                raise exceptions.ValidationError({name: [reason] for name in ignored})
        return super().to_internal_value(data)
