"""Efficiency probes: prefill and decode throughput and peak memory against context length."""
