"""Run the examples in the docstrings of the contract modules."""

import doctest

import pytest

import r1omni.claims
import r1omni.labels
import r1omni.media.video
import r1omni.media.windows
import r1omni.metrics
import r1omni.rewards
import r1omni.template
import r1omni.yamlconfig


@pytest.mark.parametrize("module", [r1omni.claims, r1omni.labels, r1omni.template, r1omni.rewards, r1omni.metrics,
                                    r1omni.media.video, r1omni.media.windows, r1omni.yamlconfig])
def test_docstring_examples(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
