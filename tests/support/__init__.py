"""Test support: helpers shared by the test modules (the Hub replica runner)."""

from __future__ import annotations

from .replica import ReplicaError, ReplicaHandle, replica_fixture, run_replica

__all__ = ["ReplicaError", "ReplicaHandle", "replica_fixture", "run_replica"]
