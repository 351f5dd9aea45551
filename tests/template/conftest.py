"""Fixtures for the template tests."""

from __future__ import annotations

import pytest

from tests.template.cfn import Template, load_template, translate


@pytest.fixture
def template() -> Template:
    """template.yaml as plain dicts (a fresh copy per test)."""
    return load_template()


@pytest.fixture(scope="module")
def translated() -> Template:
    """template.yaml after the SAM transform (what CloudFormation deploys)."""
    return translate(load_template())
