"""Test doubles for services that cannot run on the test machines (see each module)."""
