"""onectl: the operator's command line for the ONE onboarding pipeline.

Publishes validated messages, shows a school's onboarding and an order's timeline, reads
and replays dead letters, drives the ONDE feed and exports the message schemas. It reads
the workers' schemas (read-only queries) and talks to the broker with the same ``ONE_*``
settings as the workers.
"""
