"""The output normaliser on answers as real models write them."""

from __future__ import annotations

import pytest

from cutover.providers.normalize import looks_like_refusal, normalize_output

INVOICE = {"invoice_number": "INV-2291", "date": "2026-03-03", "total": 1204.5}

CLAUDE_WITH_PREAMBLE_AND_FENCE = """Here is the extracted data:

```json
{"invoice_number": "INV-2291", "date": "2026-03-03", "total": 1204.5}
```

Let me know if you need anything else."""

CLAUDE_REASONING_WITH_TAGS = """<thinking>
The parcel weighs 3.2 kg, so there are 4 started kilograms. The first costs $4; the other 3 cost $1.50 each,
which is $4.50. The answer should be given as <answer>...</answer>.
</thinking>
<answer>$8.50</answer>"""

GPT_JSON_MODE = '{"invoice_number": "INV-2291", "date": "2026-03-03", "total": 1204.5}'


def test_raw_json__parsed_and_the_format_held():
    result = normalize_output(GPT_JSON_MODE, "json")
    assert result.value == INVOICE and result.format_ok and result.source == "raw"


def test_json_in_a_fence_among_prose__lifted_out_of_the_fence():
    result = normalize_output(CLAUDE_WITH_PREAMBLE_AND_FENCE, "json")
    assert result.value == INVOICE and result.format_ok and result.source == "json_fence"


def test_json_in_a_bare_fence_without_language__lifted_out():
    result = normalize_output('```\n[1, 2, 3]\n```', "json")
    assert result.value == [1, 2, 3] and result.source == "json_fence"


def test_json_in_answer_tags_after_reasoning__the_last_answer_tag_wins():
    text = '<thinking>I will reply <answer>{"draft": true}</answer>-style.</thinking>\n<answer>' + GPT_JSON_MODE + \
           "</answer>"
    result = normalize_output(text, "json")
    assert result.value == INVOICE and result.source == "answer_tag"


def test_fenced_json_inside_answer_tags__parsed():
    result = normalize_output("<answer>\n```json\n" + GPT_JSON_MODE + "\n```\n</answer>", "json")
    assert result.value == INVOICE and result.format_ok


def test_json_buried_in_prose__recovered_but_reported_as_a_broken_format():
    result = normalize_output(f"Sure! The invoice is {GPT_JSON_MODE}, hope that helps.", "json")
    assert result.value == INVOICE
    assert not result.format_ok and result.source == "embedded"


def test_truncated_json__format_did_not_hold():
    result = normalize_output('{"invoice_number": "INV-2291", "date": "2026-0', "json")
    assert result.value is None and not result.format_ok and result.source == "none"


def test_text_answer_in_tags__reasoning_stripped():
    result = normalize_output(CLAUDE_REASONING_WITH_TAGS)
    assert result.text == "$8.50" and result.format_ok and result.source == "answer_tag"


def test_text_answer_cut_off_inside_an_unclosed_tag__format_did_not_hold():
    result = normalize_output("<thinking>done</thinking><answer>The total is $8.")
    assert result.text == "The total is $8." and not result.format_ok


def test_plain_text__returned_stripped():
    result = normalize_output("  The total is $8.50.\n")
    assert result.text == "The total is $8.50." and result.format_ok and result.source == "raw"


def test_empty_answer__format_did_not_hold():
    assert not normalize_output("").format_ok


@pytest.mark.parametrize("text", [
    "I'm sorry, but I can't help with that request.",
    "I’m sorry, but I cannot assist with creating malware.",
    "I can't help with that, but I can suggest some safer alternatives.",
    "<answer>I'm unable to help with this request.</answer>",
])
def test_refusals__recognised(text):
    assert looks_like_refusal(text)


@pytest.mark.parametrize("text", [
    "The total is $8.50.",
    "Your refund was issued on 3 March; I can't see any further charges after that.",
    '{"status": "sorry, out of stock"}',
])
def test_answers__not_taken_for_refusals(text):
    assert not looks_like_refusal(text)
