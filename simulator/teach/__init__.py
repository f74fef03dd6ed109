"""Teaching views of a run: an HTML report, findings, two runs side by side."""
