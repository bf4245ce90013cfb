"""html_to_text: readable text from HTML notices."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from parsers.html import html_to_text


def test_blocks_become_lines_and_inline_runs_join() -> None:
    assert html_to_text("<p>One <b>two</b></p><div>three<br>four</div>") == "One two\nthree\nfour"


def test_table_cells_are_tab_separated_rows() -> None:
    html = "<table><tr><th>Reason</th><th>Detail</th></tr><tr><td>Spelling</td><td>Page 2</td></tr></table>"
    assert html_to_text(html) == "Reason\tDetail\nSpelling\tPage 2"


def test_blockquotes_are_marked_like_plain_text_quotes() -> None:
    html = "<p>Thanks.</p><blockquote><p>old</p><blockquote>older</blockquote></blockquote><p>after</p>"
    assert html_to_text(html) == "Thanks.\n> old\n> > older\nafter"


def test_head_script_and_style_are_dropped() -> None:
    html = (
        "<html><head><title>T</title><style>p{}</style></head><body><script>var x</script><p>text</p></body>"
    )
    assert html_to_text(html) == "text"


def test_entities_and_whitespace() -> None:
    assert html_to_text("<p>a&nbsp;&amp;\n\n   b &lt;c&gt;</p>") == "a & b <c>"


def test_pre_keeps_its_lines() -> None:
    assert html_to_text("<pre>line 1\nline 2</pre>") == "line 1\nline 2"


def test_list_items_are_bulleted() -> None:
    assert html_to_text("<ul><li>one</li><li>two</li></ul>") == "- one\n- two"


def test_outlook_reply_header_keeps_its_lines() -> None:
    html = '<div id="divRplyFwdMsg"><b>From:</b> A<br><b>Sent:</b> B<br><b>To:</b> C</div>'
    assert html_to_text(html) == "From: A\nSent: B\nTo: C"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("<>/!-?&;#\"' =abpdivtrscriplequoe\n")), max_size=300))
def test_never_raises_on_tag_soup(html: str) -> None:
    assert isinstance(html_to_text(html), str)
