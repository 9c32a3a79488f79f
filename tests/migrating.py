"""Running migrations backwards and forwards in a test (a transactional test's database)."""
import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor


def migrate(target):
    """Migrate to target (app, migration name); returns the apps of that state."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([target])
    return executor.loader.project_state([target]).apps


def state_before(target):
    """A fixture: the apps at target, for the rows a later migration is to carry over; the app is migrated to its
    latest migration again afterwards."""
    @pytest.fixture
    def old_state():
        yield migrate(target)
        executor = MigrationExecutor(connection)
        migrate(next(node for node in executor.loader.graph.leaf_nodes() if node[0] == target[0]))
    return old_state
