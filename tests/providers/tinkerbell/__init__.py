"""Tests of the ``tinkerbell`` (bare metal) provider."""
