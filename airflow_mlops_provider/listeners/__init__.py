"""Airflow listeners the provider's plugin registers (they run where Airflow calls them: the scheduler)."""
