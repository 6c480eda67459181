"""greenops: a GitOps policy-as-code controller that tunes ML retraining schedules."""

__version__ = "0.1.0"
