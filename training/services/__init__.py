"""Writes of the training app, one module per concern: config (a job's TrainConfig options), jobs (the lifecycle
every gpu-queue job shares: send, claim, heartbeat, finish, recover, sweep), training_jobs, inference_jobs,
registry, triggers.

Torch and the engine are imported lazily, inside functions; CUDA is first touched by engine.run() inside a job, in a
prefork pool process, never in a web process or the Celery parent (which forks the pool).
"""
