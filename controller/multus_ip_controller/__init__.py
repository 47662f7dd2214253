"""Keeps EC2's secondary private addresses on a node's Multus ENIs in step with its pods' Multus addresses."""
