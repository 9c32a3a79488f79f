"""The devtools app is installed for the demo and the tests, never with production settings."""
import os
import subprocess
import sys

from django.conf import settings

DEVTOOLS_COMMANDS = {"demo_links", "demo_superuser", "make_demo_dataset", "simulate_crowd"}


def commands(**environment):
    env = {key: value for key, value in os.environ.items() if not key.startswith("DJANGO_")}
    result = subprocess.run([sys.executable, "manage.py", "help", "--commands"], cwd=settings.BASE_DIR,
                            env={**env, **environment}, capture_output=True, text=True, timeout=120, check=True)
    return set(result.stdout.split())


def test_production_settings_leave_the_dev_commands_out_and_debug_or_the_switch_brings_them():
    production = {"DJANGO_DEBUG": "false", "DJANGO_SECRET_KEY": "x" * 50}
    assert not DEVTOOLS_COMMANDS & commands(**production)
    assert DEVTOOLS_COMMANDS <= commands()
    assert DEVTOOLS_COMMANDS <= commands(**production, DJANGO_DEVTOOLS="true")
