"""Measuring ourselves: the model alone, the plain loop, the pipeline, the model zoo."""
