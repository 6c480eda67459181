"""Git write-back: workspace (clone, branch, commit, push) and merge request text."""
