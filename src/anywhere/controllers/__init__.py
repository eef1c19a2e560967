"""Lifecycle controllers (EKS Anywhere's cluster controller, Cluster API-style controllers beneath it)
and the pure bookkeeping they build on, such as node pod-CIDR allocation.

Controllers are level-triggered and keep all their state in API objects, so a restarted
controller reloads it; the bookkeeping classes therefore serialize to and from plain JSON dicts.
"""
