import django_filters

from videos.models import StorageProvider, Video


class VideoFilter(django_filters.FilterSet):
    storage_provider = django_filters.ChoiceFilter(choices=StorageProvider.choices)

    class Meta:
        model = Video
        fields = ["storage_provider", "is_published", "owner"]
