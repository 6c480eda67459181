"""`greenops gate`: the run-time half of a decision. At each fire of the schedule, retrain or skip."""
