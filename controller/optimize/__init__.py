"""Schedule search: candidate cron cadences, the simulator and the Optuna study."""
