"""`greenops demo`: a self-contained GitOps repo and MLflow history, made by really training models."""
