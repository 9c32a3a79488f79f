"""`python -m devtools.prolific_crowd BATCH --fake URL`: simulated participants work a Prolific batch on the fake.

Each participant takes a study's place on the fake Prolific (POST /_fake/studies/<id>/join/), works the HIT through
our real task page and worker API (devtools.simulator, in-process, with the SESSION_ID Prolific gave them), and goes
back to Prolific with the completion code the page showed (POST /_fake/submissions/<id>/complete/). The automatic
review, the decisions and their market calls run where they always do (the Celery worker). Idempotent: it works only
as many HITs as are still missing to reach --hits worked ones.
"""
import argparse
import os
import time

import requests


def run(batch_name, fake_url, *, hits=4, mix=("diligent", "spammer"), seed=0, wait_for_reviews=0.0, out=print):
    """Work up to `hits` HITs of the batch (counting those already worked); returns the outcomes."""
    from annotator.models import Assignment, Batch, Hit
    from devtools.simulator import PROFILES, InProcessTransport, load_ground_truth, simulate_assignment

    batch = Batch.objects.get(name=batch_name)
    published = batch.hits.filter(status=Hit.Status.PUBLISHED).exclude(external_id="").order_by("index")
    worked = published.filter(assignments__isnull=False).distinct().count()
    todo = list(published.filter(assignments__isnull=True)[:max(0, hits - worked)])
    truth = load_ground_truth(todo)
    transport = InProcessTransport()
    outcomes = []
    for i, hit in enumerate(todo, start=worked):
        participant, profile = f"DEMO{seed}P{i:04d}", mix[i % len(mix)]
        joined = requests.post(f"{fake_url}/_fake/studies/{hit.external_id}/join/",
                               json={"participant_id": participant}, timeout=30)
        joined.raise_for_status()
        submission_id = joined.json()["id"]
        outcome = simulate_assignment(transport, batch, hit, truth, participant, PROFILES[profile], seed=seed,
                                      market_assignment_id=submission_id)
        if outcome.status == "submitted":
            requests.post(f"{fake_url}/_fake/submissions/{submission_id}/complete/",
                          json={"code": outcome.completion_code}, timeout=30).raise_for_status()
        out(f"{batch.name}#{hit.index}: {participant} ({profile}) {outcome.status}, submission {submission_id}")
        outcomes.append(outcome)
    deadline = time.monotonic() + wait_for_reviews
    while wait_for_reviews and time.monotonic() < deadline:
        if not Assignment.objects.filter(hit__batch=batch, state=Assignment.State.SUBMITTED).exists():
            break
        time.sleep(0.5)
    return outcomes


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("batch")
    parser.add_argument("--fake", default=os.environ.get("PROLIFIC_API_URL", "http://127.0.0.1:8765"))
    parser.add_argument("--hits", type=int, default=4, help="HITs worked in all (default 4)")
    parser.add_argument("--mix", default="diligent,spammer", help="profiles, in turn")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--wait-for-reviews", type=float, default=0, metavar="SECONDS")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    run(args.batch, args.fake.rstrip("/"), hits=args.hits, mix=args.mix.split(","), seed=args.seed,
        wait_for_reviews=args.wait_for_reviews)


if __name__ == "__main__":
    main()
