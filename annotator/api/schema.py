"""The OpenAPI schema lists the error answers every operation can give, in the one error shape (errors.py), and
the worker API's msgspec bodies."""
import msgspec
from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers
from rest_framework.permissions import AllowAny


class ErrorDetail(serializers.Serializer):
    code = serializers.CharField(help_text="invalid, not_authenticated, permission_denied, not_found, ...")
    message = serializers.CharField(help_text="What is wrong, naming the field for invalid input.")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="invalid: every field path with its problems; empty otherwise.",
    )


class Error(serializers.Serializer):
    error = ErrorDetail()


class ErrorDocumentingAutoSchema(AutoSchema):
    """Adds, where a view does not declare them itself: 400 for a body or query to validate, 401/403 for a view
    that needs credentials, 404 for a path naming an object, 429 for a throttled view."""

    def error_codes(self):
        codes = []
        if self.method in ("POST", "PUT", "PATCH") or any(p["in"] == "query" for p in self._get_parameters()):
            codes.append("400")
        if any(not isinstance(permission, AllowAny) for permission in self.view.get_permissions()):
            authenticators = self.view.get_authenticators()
            if authenticators and authenticators[0].authenticate_header(self.view.request):
                codes.append("401")  # DRF answers 401 only when the first authenticator names a challenge
            codes.append("403")
        if "{" in self.path:
            codes.append("404")
        if self.view.get_throttles():
            codes.append("429")
        return codes

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        for code in self.error_codes():
            responses.setdefault(code, self._get_response_for_code(Error, code, direction=direction))
        return responses


def msgspec_schema(*types):
    """The OpenAPI 3.0 schema of msgspec types (one, or any of several): msgspec's JSON Schema with its $defs
    inlined (the worker API's Structs are not recursive) and a union with None written as nullable."""
    roots, defs = msgspec.json.schema_components(types)

    def openapi(node):
        if isinstance(node, list):
            return [openapi(child) for child in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            return openapi(defs[node["$ref"].rsplit("/", 1)[1]])
        # The discriminator's mapping names $defs; an empty "required" is not allowed in OpenAPI 3.0.
        node = {key: openapi(value) for key, value in node.items() if key != "discriminator" and value != []}
        variants = node.get("anyOf", [])
        if {"type": "null"} in variants:
            rest = [variant for variant in node.pop("anyOf") if variant != {"type": "null"}]
            node.update(rest[0] if len(rest) == 1 else {"anyOf": rest}, nullable=True)
        return node

    schemas = [openapi(root) for root in roots]
    return schemas[0] if len(schemas) == 1 else {"anyOf": schemas}
