"""Benchmark runners; each suite YAML in configs/benchmarks names one as ``runner: module:function``."""
