"""attnlab.tour.report: every value from results is escaped, the template's markup is not."""

import pytest

from attnlab.tour import report


def test_fill_and_paragraph_escape_the_values_after_formatting() -> None:
    text = report.fill("<i>{name}</i> {share:.1%} {n:,}", name="<b>&", share=0.25, n=12345)
    assert text == "<i>&lt;b&gt;&amp;</i> 25.0% 12,345"
    assert report.paragraph("{x[k]}", x={"k": '"q"'}) == "<p>&quot;q&quot;</p>\n"


def test_table_escapes_every_cell_and_header() -> None:
    html = report.table(["a<b", 1], [["<script>", 2.5], ["x & y", None]])
    assert html == ("<table><tr><th>a&lt;b</th><th>1</th></tr><tr><td>&lt;script&gt;</td><td>2.5</td></tr>"
                    "<tr><td>x &amp; y</td><td>None</td></tr></table>\n")


def test_images_and_section() -> None:
    assert report.images(['a"b.png', "c.png"], alt="<alt>") == (
        '<img src="a&quot;b.png" alt="&lt;alt&gt;"><img src="c.png" alt="&lt;alt&gt;">\n')
    assert report.images(["x.png"]) == '<img src="x.png" alt="x.png">\n'
    section = report.section("core", "A & B", "<p>body</p>\n")
    assert section == '<section id="core"><h2>A &amp; B</h2>\n<p>body</p>\n</section>\n'


def test_page_holds_the_sections_in_order_and_the_time() -> None:
    page = report.page(["<section>one</section>", "<section>two</section>"], seconds=61.6)
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</body></html>")
    assert page.index("one") < page.index("two")
    assert "(62 s on this machine)" in page


def test_a_missing_value_is_an_error() -> None:
    with pytest.raises(KeyError):
        report.fill("{missing}")
