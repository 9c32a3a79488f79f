"""Annotator's events for other parts to react to (providers, training triggers), so annotator imports neither.

Receivers run inside the sender's transaction: anything that leaves the database (a market call, a queued job)
must be deferred with transaction.on_commit.
"""
from django.dispatch import Signal

# The worker finished the HIT. kwargs: assignment
assignment_submitted = Signal()
# Assignments were approved or rejected (by the rules, an admin or the market), one signal per decided chunk.
# kwargs: decided ({assignment id: its state before the decision}), batch_ids (their batches' ids), actor
assignments_decided = Signal()
# Staff granted a bonus. kwargs: assignment, amount (Decimal), reason (str), actor
bonus_granted = Signal()
# Rejected work of a HIT must be done again. kwargs: hit, count
hit_needs_repost = Signal()
# Staff blocked or unblocked a worker. kwargs: worker, blocked (bool), reason (str)
worker_block_changed = Signal()
