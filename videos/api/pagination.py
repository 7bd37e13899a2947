from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination


class VideoPagination(PageNumberPagination):
    """Pages of 20 videos; ``page_size`` up to 100 (a larger one gives 100). A page size
    that is no positive number is a 400, not silently the default."""

    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100

    def get_page_size(self, request):
        value = request.query_params.get(self.page_size_query_param)
        if value is not None and not (value.isascii() and value.isdigit() and int(value) > 0):
            raise ValidationError({self.page_size_query_param: ["Enter a whole number of at least 1."]})
        return super().get_page_size(request)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"]["minimum"] = 1
        return parameters
