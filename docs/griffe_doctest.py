"""Griffe extension for the API reference: the `>>>` examples of gradc's docstrings (doctest
format, run by the tests) shown as Python console code blocks instead of Markdown quotes."""
import griffe


def fence_examples(text):
    """Wraps each run of doctest lines (a `>>>` line, its `...` continuations and its output, up
    to a blank line) in a ```pycon fence."""
    out, in_block = [], False
    for line in text.split("\n"):
        starts = line.lstrip().startswith(">>>")
        if starts and not in_block:
            out.append("```pycon")
            in_block = True
        elif in_block and not line.strip():
            out.append("```")
            in_block = False
        out.append(line.strip() if in_block else line)
    if in_block:
        out.append("```")
    return "\n".join(out)


class DoctestFences(griffe.Extension):
    def on_instance(self, *, obj, **kwargs):
        if obj.docstring is not None and ">>>" in obj.docstring.value \
                and "```pycon" not in obj.docstring.value:
            obj.docstring.value = fence_examples(obj.docstring.value)
