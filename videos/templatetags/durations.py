"""``{{ seconds|duration }}``: a video's length as players show it, 0:42, 4:05, 1:02:03;
``{{ seconds|iso_duration }}``: the same for ``<time datetime>``, PT1H2M3S."""

from django import template

register = template.Library()


def _parts(seconds):
    total = round(seconds)
    return total // 3600, total // 60 % 60, total % 60


@register.filter
def duration(seconds):
    if seconds is None:
        return ""
    hours, minutes, secs = _parts(seconds)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"


@register.filter
def iso_duration(seconds):
    if seconds is None:
        return ""
    hours, minutes, secs = _parts(seconds)
    return f"PT{hours}H{minutes}M{secs}S"
