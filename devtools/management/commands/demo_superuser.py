import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = ("Demo only: make sure a staff superuser exists and print its credentials. The password is kept in "
            "VAR_DIR/demo-admin-password, so re-running prints the same one.")

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")

    def handle(self, *args, username, **options):
        if not settings.DEBUG:
            raise CommandError("demo_superuser is for the local demo only (DJANGO_DEBUG is false); "
                               "use `manage.py createsuperuser` instead.")
        password_file = settings.VAR_DIR / "demo-admin-password"
        if password_file.exists():
            password = password_file.read_text().strip()
        else:
            password = secrets.token_urlsafe(12)
            password_file.parent.mkdir(parents=True, exist_ok=True)
            password_file.write_text(password + "\n")
            password_file.chmod(0o600)
        user, created = get_user_model().objects.get_or_create(username=username)
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        self.stdout.write(f"Demo admin login: {username} / {password}" + ("" if created else " (existing user)"))
