"""Who may use the training API: staff, or users with training.manage_training (the "researchers" group)."""
from rest_framework.permissions import BasePermission

MANAGE_TRAINING = "training.manage_training"


def is_researcher(user):
    return bool(user and user.is_authenticated and (user.is_staff or user.has_perm(MANAGE_TRAINING)))


class IsResearcher(BasePermission):
    message = "training needs a staff account or the researchers group (permission training.manage_training)"

    def has_permission(self, request, view):
        return is_researcher(request.user)
