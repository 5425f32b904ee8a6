"""The templates' filters: JSON shown to people is readable and still escaped."""

from __future__ import annotations

from recallwatch.web.templates import ENV, pretty


def test_pretty_json_keeps_text_as_written_and_the_page_escapes_it() -> None:
    details = {"text": "early: recall@10 <= 0.78; confirming…", "b": 1, "a": "<script>x</script>"}
    assert pretty(details).splitlines()[1] == '  "a": "<script>x</script>",'  # keys sorted
    assert "<= 0.78; confirming…" in pretty(details)
    html = ENV.from_string("<pre>{{ d | pretty }}</pre>").render(d=details)
    assert "&lt;= 0.78; confirming…" in html
    assert "<script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html
