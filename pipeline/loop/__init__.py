"""Around a run: synthetic scenes, fine-tuning, scoring, the HTML report."""
