"""List pagination for the whole API: DRF's limit/offset, but a bad limit or offset is a 400 naming it.

DRF silently ignores a limit or offset it cannot read and passes any large limit on to the database, where a
limit past bigint failed the request with a 500; here both are checked and the bounds are in the schema.
"""
import re

from rest_framework import pagination
from rest_framework.exceptions import ValidationError

MAX_LIMIT = 1_000
MAX_OFFSET = 2**63 - 1  # PostgreSQL's bigint


class LimitOffsetPagination(pagination.LimitOffsetPagination):
    max_limit = MAX_LIMIT

    def bounds(self):
        return {self.limit_query_param: (1, self.max_limit), self.offset_query_param: (0, MAX_OFFSET)}

    def checked(self, request, name):
        raw = request.query_params.get(name)
        if raw is None:
            return
        low, high = self.bounds()[name]
        if not (re.fullmatch(r"-?[0-9]{1,20}", raw) and low <= int(raw) <= high):
            raise ValidationError({name: [f"{raw[:40]!r} is not a whole number in [{low}, {high}]"]})

    def get_limit(self, request):
        self.checked(request, self.limit_query_param)
        return super().get_limit(request)

    def get_offset(self, request):
        self.checked(request, self.offset_query_param)
        return super().get_offset(request)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            low, high = self.bounds()[parameter["name"]]
            parameter["schema"].update(minimum=low, maximum=high)
        return parameters
