import django_filters
from django import forms
from rest_framework import filters
from rest_framework.exceptions import ValidationError

from videos.models import StorageProvider, Video


class OwnerIdFilter(django_filters.NumberFilter):
    field_class = forms.IntegerField


class VideoFilter(django_filters.FilterSet):
    storage_provider = django_filters.ChoiceFilter(choices=StorageProvider.choices)
    # A plain number, not a choice of users: a choice filter would list every account
    # in the browsable API's form and answer 400 for an id that does not exist. An
    # unknown id and a user with no visible videos both give an empty page.
    owner = OwnerIdFilter(field_name="owner", label="Owner id")

    class Meta:
        model = Video
        fields = ["storage_provider", "is_published", "owner"]


class BoundedSearchFilter(filters.SearchFilter):
    """DRF's search, with the cost of one query bounded: few terms, each of a sane length.

    Every term becomes one more ``ILIKE`` over each search field, so a thousand of them
    make a query that is slow on PostgreSQL and too large for SQLite.
    """

    max_terms = 10
    max_term_length = 100

    def get_search_terms(self, request):
        terms = super().get_search_terms(request)
        if len(terms) > self.max_terms:
            raise ValidationError({self.search_param: [f"Search for at most {self.max_terms} words at a time."]})
        if any(len(term) > self.max_term_length for term in terms):
            raise ValidationError(
                {self.search_param: [f"Each search word may be at most {self.max_term_length} characters long."]}
            )
        return terms
