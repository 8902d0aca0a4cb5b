"""The accuracy gate: threshold rules, the champion comparison, the HTML report and the summary table."""
