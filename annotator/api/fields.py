"""A NUL character, which PostgreSQL can store neither in text nor in jsonb, is a 400 naming the field, not a
DataError from the database and a 500: in names, query filters and stored JSON."""
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from annotator import files

NUL = "\x00"


class NameField(serializers.SlugRelatedField):
    """An object named by its unique name (slug_field)."""

    def to_internal_value(self, data):
        if isinstance(data, str) and NUL in data:
            self.fail("does_not_exist", slug_name=self.slug_field, value=data.replace(NUL, "\\x00")[:100])
        return super().to_internal_value(data)


@extend_schema_field(serializers.URLField(allow_null=True))
class StoredFileUrlField(serializers.Field):
    """The URL that reads the stored file of a FileField (annotator.files.url), null while there is none."""

    def __init__(self, **kwargs):
        super().__init__(read_only=True, **kwargs)

    def get_attribute(self, instance):
        stored = super().get_attribute(instance)
        return stored.name if stored else None  # an empty FieldFile is falsy but not None

    def to_representation(self, name):
        return files.url(name, self.context.get("request"))


def query_text(request, name):
    """The query parameter `name` (None when absent), refused when it holds a NUL character."""
    value = request.query_params.get(name)
    if value is not None and NUL in value:
        raise ValidationError({name: ["must not contain a NUL character"]})
    return value


def nul_path(value, path=""):
    """The field path ("records[0].client.note") of the first string or key in decoded JSON that holds a NUL
    character, or None when there is none."""
    if isinstance(value, str):
        return (path or "body") if NUL in value else None
    if isinstance(value, dict):
        children = [(f"{path}.{key}" if path else str(key), key, child) for key, child in value.items()]
    elif isinstance(value, list):
        children = [(f"{path}[{i}]", "", child) for i, child in enumerate(value)]
    else:
        return None
    for child_path, key, child in children:
        if NUL in key:
            return child_path.replace(NUL, "\\u0000")
        found = nul_path(child, child_path)
        if found is not None:
            return found
    return None
