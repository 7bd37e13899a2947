from rest_framework import permissions


def may_change(user, video):
    """Only a video's owner or staff may change it (its metadata, its file)."""
    return user.is_staff or video.owner_id == user.pk


class IsOwnerOrStaffOrReadOnly(permissions.BasePermission):
    """Anyone may read what they can see; only the owner or staff may change it."""

    def has_object_permission(self, request, view, obj):
        if request.method in permissions.SAFE_METHODS:
            return True
        return may_change(request.user, obj)
