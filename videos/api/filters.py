import django_filters
from django import forms
from rest_framework import filters
from rest_framework.exceptions import ValidationError

from videos.models import StorageProvider, Video


class OwnerIdFilter(django_filters.NumberFilter):
    field_class = forms.IntegerField


class StrictBooleanField(forms.NullBooleanField):
    """true/false (or 1/0): Django's NullBooleanField reads any other value as "either",
    which would answer ``is_published=-1`` with every video instead of an error."""

    widget = forms.TextInput  # NullBooleanSelect maps unknown values to None before to_python

    def to_python(self, value):
        if value in (None, ""):
            return None
        if value in (True, "true", "True", "1"):
            return True
        if value in (False, "false", "False", "0"):
            return False
        raise forms.ValidationError("Enter true or false.", code="invalid")

    def validate(self, value):
        pass


class StrictBooleanFilter(django_filters.BooleanFilter):
    field_class = StrictBooleanField


# What a search looks in, in the API and on the public list page alike.
SEARCH_FIELDS = ["title", "description"]


class VideoFilter(django_filters.FilterSet):
    storage_provider = django_filters.ChoiceFilter(choices=StorageProvider.choices)
    # A plain number, not a choice of users: a choice filter would list every account
    # in the browsable API's form and answer 400 for an id that does not exist. An
    # unknown id and a user with no visible videos both give an empty page.
    owner = OwnerIdFilter(field_name="owner", label="Owner id")
    is_published = StrictBooleanFilter()

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
        try:
            terms = super().get_search_terms(request)
        except ValidationError as exc:  # DRF's check of the text (a null character) names no field
            raise ValidationError({self.search_param: exc.detail}) from None
        if len(terms) > self.max_terms:
            raise ValidationError({self.search_param: [f"Search for at most {self.max_terms} words at a time."]})
        if any(len(term) > self.max_term_length for term in terms):
            raise ValidationError(
                {self.search_param: [f"Each search word may be at most {self.max_term_length} characters long."]}
            )
        return terms
