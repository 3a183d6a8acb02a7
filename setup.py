"""Maps the top-level ``domains/`` folder to the ``sciflow.domains`` package (see DESIGN.md)."""
from setuptools import find_packages, setup

core = ["sciflow"] + [f"sciflow.{p}" for p in find_packages("sciflow")]
domains = ["sciflow.domains"] + [f"sciflow.domains.{p}" for p in find_packages("domains")]
setup(packages=core + domains, package_dir={"sciflow": "sciflow", "sciflow.domains": "domains"})
