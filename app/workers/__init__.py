"""dramatiq actors: the jobs the webhooks and the scheduler enqueue."""
